package waserver

import (
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// handle serves one stanza from the client.
func (c *conn) handle(n *waBinary.Node) {
	switch n.Tag {
	case "iq":
		c.handleIQ(n)
	case "message":
		c.relayMessage(n)
	case "receipt":
		c.relayReceipt(n)
	case "ack":
		if c.dev != nil {
			class, _ := n.Attrs["class"].(string)
			id, _ := n.Attrs["id"].(string)
			c.srv.acked(c.dev, class, id)
		}
	case "chatstate":
		c.relayChatState(n)
	}
}

func iqResult(iq *waBinary.Node, content ...waBinary.Node) waBinary.Node {
	out := waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"id": iq.Attrs["id"], "type": "result", "from": types.ServerJID}}
	if to, ok := iq.Attrs["to"].(types.JID); ok {
		out.Attrs["from"] = to
	}
	if len(content) > 0 {
		out.Content = content
	}
	return out
}

func iqError(iq *waBinary.Node, code int, text string) waBinary.Node {
	out := iqResult(iq, waBinary.Node{Tag: "error", Attrs: waBinary.Attrs{"code": code, "text": text}})
	out.Attrs["type"] = "error"
	return out
}

// handleIQ answers an info query. Queries the server does not know get
// an empty result, so that whatsmeow does not wait for a timeout.
func (c *conn) handleIQ(iq *waBinary.Node) {
	typ, _ := iq.Attrs["type"].(string)
	if typ == "result" || typ == "error" {
		c.pairSigned(iq)
		return
	}
	xmlns, _ := iq.Attrs["xmlns"].(string)
	var first waBinary.Node
	if children := iq.GetChildren(); len(children) > 0 {
		first = children[0]
	}
	var resp waBinary.Node
	switch {
	case xmlns == "w:p":
		if c.dev != nil {
			c.srv.mu.Lock()
			c.dev.pings++
			c.srv.mu.Unlock()
		}
		resp = iqResult(iq)
	case xmlns == "encrypt" && typ == "get" && first.Tag == "count":
		resp = c.keyCount(iq)
	case xmlns == "encrypt" && typ == "get" && first.Tag == "key":
		resp = c.fetchKeys(iq)
	case xmlns == "encrypt" && typ == "set":
		resp = c.uploadKeys(iq)
	case xmlns == "passive":
		resp = iqResult(iq)
		if first.Tag == "active" {
			defer c.activate()
		}
	case xmlns == "w:m" && first.Tag == "media_conn":
		resp = c.mediaConn(iq)
	case xmlns == "w:g2":
		resp = c.groupIQ(iq, first)
	case xmlns == "usync":
		resp = c.usync(iq)
	case xmlns == "privacy" && typ == "get":
		resp = iqResult(iq, waBinary.Node{Tag: "privacy", Content: []waBinary.Node{
			{Tag: "category", Attrs: waBinary.Attrs{"name": "readreceipts", "value": "all"}},
			{Tag: "category", Attrs: waBinary.Attrs{"name": "last", "value": "all"}},
		}})
	case xmlns == "md" && first.Tag == "link_code_companion_reg":
		resp = c.linkCode(iq, first)
	case xmlns == "md" && first.Tag == "remove-companion-device":
		resp = c.removeDevice(iq, first)
	default:
		c.srv.log.Debug().Str("node", iq.XMLString()).Msg("unknown iq, empty result")
		resp = iqResult(iq)
	}
	_ = c.send(resp)
}

// removeDevice unlinks a device at its own request (logout).
func (c *conn) removeDevice(iq *waBinary.Node, req waBinary.Node) waBinary.Node {
	jid, ok := req.Attrs["jid"].(types.JID)
	if !ok || c.dev == nil {
		return iqError(iq, 400, "bad-request")
	}
	s := c.srv
	s.mu.Lock()
	d := s.deviceOf(jid)
	if d == nil || d.acct != c.dev.acct {
		s.mu.Unlock()
		return iqError(iq, 404, "item-not-found")
	}
	delete(d.acct.devices, d.id)
	d.pending, d.conn = nil, nil
	s.mu.Unlock()
	return iqResult(iq)
}

// RemoveDevice unlinks a device from its phone (Settings → Linked
// devices → Log out): the device is told (stream error 401
// device_removed) if connected, and refused at its next login.
func (s *Server) RemoveDevice(jid types.JID) bool {
	s.mu.Lock()
	d := s.deviceOf(jid)
	if d == nil {
		s.mu.Unlock()
		return false
	}
	delete(d.acct.devices, d.id)
	c := d.conn
	d.pending, d.conn = nil, nil
	s.mu.Unlock()
	if c != nil {
		_ = c.send(waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{"code": "401"}, Content: []waBinary.Node{
			{Tag: "conflict", Attrs: waBinary.Attrs{"type": "device_removed"}},
		}})
		c.drop()
	}
	return true
}
