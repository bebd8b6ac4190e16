package waserver

import (
	"encoding/binary"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// preKey is a Signal pre-key a device uploaded (sig only for the signed
// one).
type preKey struct {
	id  uint32
	pub [32]byte
	sig []byte
}

func readPreKey(n waBinary.Node) (preKey, bool) {
	id, _ := n.GetChildByTag("id").Content.([]byte)
	val, _ := n.GetChildByTag("value").Content.([]byte)
	if len(id) != 3 || len(val) != 32 {
		return preKey{}, false
	}
	k := preKey{id: binary.BigEndian.Uint32(append([]byte{0}, id...)), pub: [32]byte(val)}
	if sig, ok := n.GetChildByTag("signature").Content.([]byte); ok {
		k.sig = sig
	}
	return k, true
}

func (k preKey) node(tag string) waBinary.Node {
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], k.id)
	children := []waBinary.Node{{Tag: "id", Content: id[1:]}, {Tag: "value", Content: k.pub[:]}}
	if tag == "skey" {
		children = append(children, waBinary.Node{Tag: "signature", Content: k.sig})
	}
	return waBinary.Node{Tag: tag, Content: children}
}

// uploadKeys stores the pre-keys a device uploads (encrypt set).
func (c *conn) uploadKeys(iq *waBinary.Node) waBinary.Node {
	d := c.dev
	if d == nil {
		return iqError(iq, 401, "not-authorized")
	}
	var keys []preKey
	list := iq.GetChildByTag("list")
	for _, n := range list.GetChildren() {
		if k, ok := readPreKey(n); ok {
			keys = append(keys, k)
		}
	}
	skey, skeyOK := readPreKey(iq.GetChildByTag("skey"))
	ident, _ := iq.GetChildByTag("identity").Content.([]byte)
	reg, _ := iq.GetChildByTag("registration").Content.([]byte)
	c.srv.mu.Lock()
	d.prekeys = append(d.prekeys, keys...)
	if skeyOK {
		d.skey = skey
	}
	if len(ident) == 32 {
		d.identity = [32]byte(ident)
	}
	if len(reg) == 4 {
		d.regID = binary.BigEndian.Uint32(reg)
	}
	c.srv.mu.Unlock()
	return iqResult(iq)
}

// keyCount answers how many one-time pre-keys the server holds for the
// device (encrypt get count).
func (c *conn) keyCount(iq *waBinary.Node) waBinary.Node {
	n := 0
	if c.dev != nil {
		c.srv.mu.Lock()
		n = len(c.dev.prekeys)
		c.srv.mu.Unlock()
	}
	return iqResult(iq, waBinary.Node{Tag: "count", Attrs: waBinary.Attrs{"value": n}})
}

// fetchKeys answers pre-key bundles (encrypt get key), each one-time
// pre-key given out once.
func (c *conn) fetchKeys(iq *waBinary.Node) waBinary.Node {
	var users []waBinary.Node
	c.srv.mu.Lock()
	key := iq.GetChildByTag("key")
	for _, u := range key.GetChildren() {
		jid, ok := u.Attrs["jid"].(types.JID)
		if !ok {
			continue
		}
		d := c.srv.deviceOf(jid)
		if d == nil {
			users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: []waBinary.Node{
				{Tag: "error", Attrs: waBinary.Attrs{"code": "404", "text": "item-not-found"}},
			}})
			continue
		}
		var reg [4]byte
		binary.BigEndian.PutUint32(reg[:], d.regID)
		children := []waBinary.Node{
			{Tag: "registration", Content: reg[:]},
			{Tag: "type", Content: []byte{5}},
			{Tag: "identity", Content: append([]byte(nil), d.identity[:]...)},
		}
		if len(d.prekeys) > 0 {
			children = append(children, d.prekeys[0].node("key"))
			d.prekeys = d.prekeys[1:]
		}
		children = append(children, d.skey.node("skey"))
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: children})
	}
	c.srv.mu.Unlock()
	return iqResult(iq, waBinary.Node{Tag: "list", Content: users})
}
