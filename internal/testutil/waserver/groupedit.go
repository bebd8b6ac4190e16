package waserver

import (
	"slices"
	"time"
	"unicode/utf8"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// maxSubject is the longest group name WhatsApp takes (in characters);
// a longer one is refused with 406 not-acceptable.
const maxSubject = 25

// groupTopic is a group's description: its text and the ID the next
// change must name as its previous one.
type groupTopic struct {
	id    string
	body  string
	setBy types.JID
	at    time.Time
}

// nodes is the description element of a group's info (none when the
// group has no description).
func (t groupTopic) nodes() []waBinary.Node {
	if t.body == "" {
		return nil
	}
	return []waBinary.Node{{Tag: "description", Attrs: waBinary.Attrs{"id": t.id, "participant": t.setBy, "t": t.at.Unix()},
		Content: []waBinary.Node{{Tag: "body", Content: []byte(t.body)}}}}
}

// groupEdit serves a member's change of a group's name (<subject>) or
// description (<description id prev><body/></description>, or with
// delete="true"): the group is changed and every member's other devices
// get the w:gp2 notification whatsmeow turns into events.GroupInfo. A
// description change must name the current description's ID as prev
// (409 conflict otherwise), as WhatsApp checks.
func (c *conn) groupEdit(iq *waBinary.Node, req waBinary.Node, to types.JID) waBinary.Node {
	s := c.srv
	me := c.dev.acct
	now := time.Now()
	s.mu.Lock()
	g := s.groups[to.User]
	if g == nil {
		s.mu.Unlock()
		return iqError(iq, 404, "item-not-found")
	} else if !g.has(me) {
		s.mu.Unlock()
		return iqError(iq, 403, "forbidden")
	}
	var change waBinary.Node
	switch req.Tag {
	case "subject":
		name, _ := req.Content.([]byte)
		if len(name) == 0 || utf8.RuneCount(name) > maxSubject {
			s.mu.Unlock()
			return iqError(iq, 406, "not-acceptable")
		}
		g.subject = string(name)
		change = waBinary.Node{Tag: "subject", Attrs: waBinary.Attrs{"subject": g.subject, "s_t": now.Unix(), "s_o": me.PN}}
	case "description":
		id, _ := req.Attrs["id"].(string)
		prev, _ := req.Attrs["prev"].(string)
		if id == "" || (g.topic.id != "" && prev != g.topic.id) {
			s.mu.Unlock()
			return iqError(iq, 409, "conflict")
		}
		change = waBinary.Node{Tag: "description", Attrs: waBinary.Attrs{"id": id}}
		if del, _ := req.Attrs["delete"].(string); del == "true" {
			g.topic = groupTopic{id: id}
			change.Content = []waBinary.Node{{Tag: "delete"}}
		} else {
			body, _ := req.GetOptionalChildByTag("body")
			text, _ := body.Content.([]byte)
			g.topic = groupTopic{id: id, body: string(text), setBy: me.PN, at: now}
			change.Content = []waBinary.Node{{Tag: "body", Content: text}}
		}
	}
	var targets []*device
	for _, d := range s.devicesOf(g.members...) {
		if d != c.dev {
			targets = append(targets, d)
		}
	}
	s.mu.Unlock()
	note := waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
		"from": g.jid, "type": "w:gp2", "id": c.newID(), "participant": me.PN, "notify": me.PushName, "t": now.Unix(),
	}, Content: []waBinary.Node{change}}
	for _, d := range targets {
		s.deliver(d, note, true)
	}
	return iqResult(iq)
}

// isAdmin reports whether a is the group's creator or a promoted member.
func (g *group) isAdmin(a *Account) bool { return a == g.creator || slices.Contains(g.admins, a) }

// groupParticipants serves an admin's removal (<remove>) or promotion
// (<promote>) of members: a member who is not an admin is refused (403
// forbidden); each participant named who is not in the group gets error
// 404 in the answer. Every device of the members before the change but
// the acting one gets the w:gp2 notification (the removed too, which is
// how they learn it).
func (c *conn) groupParticipants(iq *waBinary.Node, req waBinary.Node, to types.JID) waBinary.Node {
	s := c.srv
	me := c.dev.acct
	s.mu.Lock()
	g := s.groups[to.User]
	if g == nil {
		s.mu.Unlock()
		return iqError(iq, 404, "item-not-found")
	} else if !g.has(me) || !g.isAdmin(me) {
		s.mu.Unlock()
		return iqError(iq, 403, "forbidden")
	}
	var targets []*device
	for _, d := range s.devicesOf(g.members...) {
		if d != c.dev {
			targets = append(targets, d)
		}
	}
	var answer, changed []waBinary.Node
	for _, p := range req.GetChildren() {
		jid, ok := p.Attrs["jid"].(types.JID)
		if p.Tag != "participant" || !ok {
			continue
		}
		a := s.account(jid)
		if a == nil || !g.has(a) {
			answer = append(answer, waBinary.Node{Tag: "participant", Attrs: waBinary.Attrs{"jid": jid, "error": 404}})
			continue
		}
		switch req.Tag {
		case "remove":
			g.members = slices.DeleteFunc(g.members, func(m *Account) bool { return m == a })
			g.admins = slices.DeleteFunc(g.admins, func(m *Account) bool { return m == a })
		case "promote":
			if !g.isAdmin(a) {
				g.admins = append(g.admins, a)
			}
		}
		answer = append(answer, waBinary.Node{Tag: "participant", Attrs: waBinary.Attrs{"jid": a.PN}})
		changed = append(changed, waBinary.Node{Tag: "participant", Attrs: waBinary.Attrs{"jid": a.PN}})
	}
	s.mu.Unlock()
	if len(changed) > 0 {
		note := waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
			"from": g.jid, "type": "w:gp2", "id": c.newID(), "participant": me.PN, "notify": me.PushName, "t": time.Now().Unix(),
		}, Content: []waBinary.Node{{Tag: req.Tag, Content: changed}}}
		for _, d := range targets {
			s.deliver(d, note, true)
		}
	}
	return iqResult(iq, waBinary.Node{Tag: req.Tag, Content: answer})
}
