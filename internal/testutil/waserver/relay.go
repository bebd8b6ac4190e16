package waserver

import (
	"slices"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// addressed is a device's JID in the addressing of a chat: its LID when
// the chat is a LID, else its number.
func addressed(a *Account, id uint16, chat types.JID) types.JID {
	if chat.Server == types.HiddenUserServer {
		return a.lidDevice(id)
	}
	return a.pnDevice(id)
}

// relayMessage delivers a one-to-one message to every device it was
// encrypted for (<participants><to jid>), each its own <enc>, and
// acknowledges it to the sender with the server's timestamp. A copy for
// the sender's own devices carries the chat as recipient.
func (c *conn) relayMessage(msg *waBinary.Node) {
	if c.dev == nil {
		return
	}
	id, _ := msg.Attrs["id"].(string)
	to, _ := msg.Attrs["to"].(types.JID)
	now := time.Now().Unix()
	ack := waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{"class": "message", "id": id, "t": now, "from": to}}
	s := c.srv
	if to.Server == types.GroupServer {
		c.relayGroupMessage(msg, to, id, now, ack)
		return
	}
	sender := c.dev
	var identity *waBinary.Node
	var extra []waBinary.Node
	for _, child := range msg.GetChildren() {
		switch child.Tag {
		case "device-identity":
			identity = &child
		case "participants", "tctoken", "reporting":
		default:
			extra = append(extra, child)
		}
	}
	type out struct {
		d    *device
		node waBinary.Node
	}
	var outs []out
	s.mu.Lock()
	var participants []waBinary.Node
	if pnode, ok := msg.GetOptionalChildByTag("participants"); ok {
		participants = pnode.GetChildren()
	}
	if len(participants) == 0 && len(msg.GetChildrenByTag("enc")) > 0 {
		// A message for one device (a retry's resend): its <enc> is a
		// direct child and "to" names the device.
		participants = []waBinary.Node{{Tag: "to", Attrs: waBinary.Attrs{"jid": to}, Content: msg.GetChildrenByTag("enc")}}
		extra = slices.DeleteFunc(extra, func(n waBinary.Node) bool { return n.Tag == "enc" })
		to = to.ToNonAD()
	}
	for _, p := range participants {
		jid, ok := p.Attrs["jid"].(types.JID)
		if p.Tag != "to" || !ok {
			continue
		}
		d := s.deviceOf(jid)
		if d == nil {
			continue
		}
		attrs := waBinary.Attrs{"id": id, "t": now, "type": msg.Attrs["type"]}
		if edit, ok := msg.Attrs["edit"]; ok {
			attrs["edit"] = edit
		}
		if d.acct == sender.acct {
			attrs["from"] = addressed(sender.acct, sender.id, to)
			attrs["recipient"] = to
		} else {
			attrs["from"] = addressed(sender.acct, sender.id, to)
			attrs["notify"] = sender.acct.PushName
			if to.Server == types.HiddenUserServer {
				attrs["sender_pn"] = sender.acct.pnDevice(sender.id)
			} else {
				attrs["sender_lid"] = sender.acct.lidDevice(sender.id)
			}
		}
		var content []waBinary.Node
		for _, enc := range p.GetChildren() {
			content = append(content, enc)
			if typ, ok := enc.Attrs["type"].(string); ok {
				d.lastEnc = typ
			}
			if enc.Attrs["type"] == "pkmsg" && identity != nil {
				content = append(content, *identity)
			}
		}
		content = append(content, extra...)
		outs = append(outs, out{d: d, node: waBinary.Node{Tag: "message", Attrs: attrs, Content: content}})
	}
	s.mu.Unlock()
	s.log.Debug().Int("devices", len(outs)).Str("id", id).Msg("relaying message")
	_ = c.send(ack)
	for _, o := range outs {
		s.deliver(o.d, o.node, true)
	}
}

// relayReceipt passes a receipt to the devices of the account it is for.
// A delivery receipt (no type, or "inactive") also acknowledges the
// message to the server. Receipts meant for the sender's own devices
// (sender, read-self, peer_msg, hist_sync) are not passed on.
func (c *conn) relayReceipt(r *waBinary.Node) {
	if c.dev == nil {
		return
	}
	s := c.srv
	id, _ := r.Attrs["id"].(string)
	typ, _ := r.Attrs["type"].(string)
	to, _ := r.Attrs["to"].(types.JID)
	if typ == "" || typ == "inactive" || typ == "sender" || typ == "peer_msg" {
		s.acked(c.dev, "message", id)
	}
	switch typ {
	case "sender", "read-self", "peer_msg", "hist_sync", "server-error":
		return
	case "inactive":
		typ = ""
	case "retry":
		s.mu.Lock()
		s.retries++
		s.mu.Unlock()
	}
	if to.Server == types.GroupServer {
		c.relayGroupReceipt(r, to, typ)
		return
	}
	s.mu.Lock()
	acct := s.account(to)
	var targets []*device
	if acct != nil {
		if to.Device != 0 {
			if d := acct.devices[to.Device]; d != nil {
				targets = append(targets, d)
			}
		} else {
			for _, did := range acct.deviceIDs() {
				targets = append(targets, acct.devices[did])
			}
		}
	}
	from := addressed(c.dev.acct, c.dev.id, to)
	s.mu.Unlock()
	attrs := waBinary.Attrs{"id": id, "from": from, "t": time.Now().Unix()}
	if typ != "" {
		attrs["type"] = typ
	}
	node := waBinary.Node{Tag: "receipt", Attrs: attrs, Content: r.Content}
	for _, d := range targets {
		s.deliver(d, node, true)
	}
}

// relayChatState passes typing notifications to the devices of the
// account they are for; they are not kept.
func (c *conn) relayChatState(n *waBinary.Node) {
	if c.dev == nil {
		return
	}
	s := c.srv
	to, _ := n.Attrs["to"].(types.JID)
	if to.Server == types.GroupServer {
		c.relayGroupChatState(n, to)
		return
	}
	s.mu.Lock()
	acct := s.account(to)
	var targets []*device
	if acct != nil {
		for _, did := range acct.deviceIDs() {
			targets = append(targets, acct.devices[did])
		}
	}
	from := c.dev.acct.PN
	if to.Server == types.HiddenUserServer {
		from = c.dev.acct.LID
	}
	s.mu.Unlock()
	node := waBinary.Node{Tag: "chatstate", Attrs: waBinary.Attrs{"from": from}, Content: n.Content}
	for _, d := range targets {
		s.deliver(d, node, false)
	}
}
