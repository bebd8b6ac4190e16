package waserver

import (
	"fmt"
	"slices"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// group is a WhatsApp group (phone-number addressing).
type group struct {
	jid     types.JID
	subject string
	creator *Account
	created time.Time
	members []*Account
	topic   groupTopic // groupedit.go
	admins  []*Account // promoted members (the creator is always one)
}

// node is the group's <group> element, as group info queries and
// creation answer it.
func (g *group) node() waBinary.Node {
	parts := make([]waBinary.Node, 0, len(g.members))
	for _, m := range g.members {
		attrs := waBinary.Attrs{"jid": m.PN, "lid": m.LID}
		if m == g.creator {
			attrs["type"] = "superadmin"
		} else if slices.Contains(g.admins, m) {
			attrs["type"] = "admin"
		}
		parts = append(parts, waBinary.Node{Tag: "participant", Attrs: attrs})
	}
	parts = append(parts, g.topic.nodes()...)
	return waBinary.Node{Tag: "group", Attrs: waBinary.Attrs{
		"id": g.jid.User, "creator": g.creator.PN, "creation": g.created.Unix(), "subject": g.subject,
		"s_t": g.created.Unix(), "s_o": g.creator.PN, "size": len(g.members), "addressing_mode": "pn",
	}, Content: parts}
}

func (g *group) has(a *Account) bool { return slices.Contains(g.members, a) }

// groupIQ serves the group queries (w:g2): create, info, leave.
func (c *conn) groupIQ(iq *waBinary.Node, req waBinary.Node) waBinary.Node {
	if c.dev == nil {
		return iqError(iq, 401, "not-authorized")
	}
	s := c.srv
	me := c.dev.acct
	to, _ := iq.Attrs["to"].(types.JID)
	switch req.Tag {
	case "create":
		subject, _ := req.Attrs["subject"].(string)
		s.mu.Lock()
		s.groupSeq++
		g := &group{jid: types.NewJID(fmt.Sprintf("1203630%011d", s.groupSeq), types.GroupServer), subject: subject, creator: me, created: time.Now(), members: []*Account{me}}
		for _, p := range req.GetChildren() {
			jid, ok := p.Attrs["jid"].(types.JID)
			if p.Tag != "participant" || !ok {
				continue
			}
			if a := s.account(jid); a != nil && !g.has(a) {
				g.members = append(g.members, a)
			}
		}
		s.groups[g.jid.User] = g
		node := g.node()
		s.mu.Unlock()
		return iqResult(iq, node)
	case "query":
		s.mu.Lock()
		g := s.groups[to.User]
		if g == nil {
			s.mu.Unlock()
			return iqError(iq, 404, "item-not-found")
		} else if !g.has(me) {
			s.mu.Unlock()
			return iqError(iq, 403, "forbidden")
		}
		node := g.node()
		s.mu.Unlock()
		return iqResult(iq, node)
	case "leave":
		gnode, _ := req.GetOptionalChildByTag("group")
		gid, _ := gnode.Attrs["id"].(types.JID)
		s.mu.Lock()
		g := s.groups[gid.User]
		if g == nil || !g.has(me) {
			s.mu.Unlock()
			return iqError(iq, 404, "item-not-found")
		}
		g.members = slices.DeleteFunc(g.members, func(a *Account) bool { return a == me })
		targets := s.devicesOf(g.members...)
		s.mu.Unlock()
		note := waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
			"from": g.jid, "type": "w:gp2", "id": c.newID(), "participant": me.PN, "t": time.Now().Unix(),
		}, Content: []waBinary.Node{{Tag: "remove", Content: []waBinary.Node{{Tag: "participant", Attrs: waBinary.Attrs{"jid": me.PN}}}}}}
		for _, d := range targets {
			s.deliver(d, note, true)
		}
		return iqResult(iq, waBinary.Node{Tag: "leave", Content: []waBinary.Node{{Tag: "group", Attrs: waBinary.Attrs{"id": g.jid}}}})
	case "subject", "description":
		return c.groupEdit(iq, req, to)
	case "remove", "promote":
		return c.groupParticipants(iq, req, to)
	}
	return iqError(iq, 400, "bad-request")
}

// devicesOf lists the devices of accounts. Call with s.mu held.
func (s *Server) devicesOf(accts ...*Account) []*device {
	var out []*device
	for _, a := range accts {
		for _, id := range a.deviceIDs() {
			out = append(out, a.devices[id])
		}
	}
	return out
}

// relayGroupMessage delivers a group message to every device of every
// member but the sender's: the sender key message (<enc type=skmsg>) to
// all, and to each device the sender encrypted something for
// (<participants>: the sender key distribution) that too.
func (c *conn) relayGroupMessage(msg *waBinary.Node, to types.JID, id string, now int64, ack waBinary.Node) {
	s := c.srv
	sender := c.dev
	perDevice := map[*device][]waBinary.Node{}
	var shared, identity []waBinary.Node
	s.mu.Lock()
	g := s.groups[to.User]
	if g == nil || !g.has(sender.acct) {
		s.mu.Unlock()
		ack.Attrs["error"] = 403
		_ = c.send(ack)
		return
	}
	for _, child := range msg.GetChildren() {
		switch child.Tag {
		case "participants":
			for _, p := range child.GetChildren() {
				jid, _ := p.Attrs["jid"].(types.JID)
				if d := s.deviceOf(jid); d != nil {
					perDevice[d] = p.GetChildren()
				}
			}
		case "enc":
			shared = append(shared, child)
		case "device-identity":
			identity = append(identity, child)
		}
	}
	targets := s.devicesOf(g.members...)
	s.mu.Unlock()
	_ = c.send(ack)
	attrs := waBinary.Attrs{"from": g.jid, "id": id, "t": now, "type": msg.Attrs["type"], "notify": sender.acct.PushName,
		"participant": sender.acct.pnDevice(sender.id), "participant_lid": sender.acct.lidDevice(sender.id), "addressing_mode": "pn"}
	if edit, ok := msg.Attrs["edit"]; ok {
		attrs["edit"] = edit
	}
	for _, d := range targets {
		if d == sender {
			continue
		}
		content := append([]waBinary.Node(nil), perDevice[d]...)
		if len(content) > 0 {
			content = append(content, identity...)
		}
		content = append(content, shared...)
		s.mu.Lock()
		for _, enc := range content {
			if typ, ok := enc.Attrs["type"].(string); ok && enc.Tag == "enc" {
				d.lastEnc = typ
			}
		}
		s.mu.Unlock()
		node := waBinary.Node{Tag: "message", Attrs: maps(attrs), Content: content}
		s.deliver(d, node, true)
	}
}

// relayGroupReceipt passes a receipt for a group message to the devices
// of the message's sender (the receipt's participant).
func (c *conn) relayGroupReceipt(r *waBinary.Node, to types.JID, typ string) {
	s := c.srv
	sender, _ := r.Attrs["participant"].(types.JID)
	id, _ := r.Attrs["id"].(string)
	s.mu.Lock()
	acct := s.account(sender)
	var targets []*device
	if acct != nil {
		targets = s.devicesOf(acct)
	}
	from := c.dev.acct.pnDevice(c.dev.id)
	s.mu.Unlock()
	attrs := waBinary.Attrs{"id": id, "from": to, "participant": from, "t": time.Now().Unix()}
	if typ != "" {
		attrs["type"] = typ
	}
	for _, d := range targets {
		s.deliver(d, waBinary.Node{Tag: "receipt", Attrs: attrs, Content: r.Content}, true)
	}
}

// relayGroupChatState passes typing in a group to its other members.
func (c *conn) relayGroupChatState(n *waBinary.Node, to types.JID) {
	s := c.srv
	s.mu.Lock()
	g := s.groups[to.User]
	var targets []*device
	if g != nil && g.has(c.dev.acct) {
		for _, d := range s.devicesOf(g.members...) {
			if d.acct != c.dev.acct {
				targets = append(targets, d)
			}
		}
	}
	s.mu.Unlock()
	node := waBinary.Node{Tag: "chatstate", Attrs: waBinary.Attrs{"from": to, "participant": c.dev.acct.PN}, Content: n.Content}
	for _, d := range targets {
		s.deliver(d, node, false)
	}
}

func maps(a waBinary.Attrs) waBinary.Attrs {
	out := make(waBinary.Attrs, len(a))
	for k, v := range a {
		out[k] = v
	}
	return out
}
