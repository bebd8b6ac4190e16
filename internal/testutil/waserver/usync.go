package waserver

import (
	"strings"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// usync answers a user sync query: for each user asked about (by JID, or
// by number in a <contact> node) the protocols the query names: devices,
// contact (is the number on WhatsApp), lid, and empty business, status
// and picture nodes.
func (c *conn) usync(iq *waBinary.Node) waBinary.Node {
	q := iq.GetChildByTag("usync")
	var protocols []string
	query := q.GetChildByTag("query")
	for _, p := range query.GetChildren() {
		protocols = append(protocols, p.Tag)
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	var users []waBinary.Node
	list := q.GetChildByTag("list")
	for _, u := range list.GetChildren() {
		jid, hasJID := u.Attrs["jid"].(types.JID)
		var query []byte
		if contact, ok := u.GetOptionalChildByTag("contact"); ok {
			switch v := contact.Content.(type) {
			case []byte:
				query = v
			case string:
				query = []byte(v)
			}
			number := strings.TrimPrefix(strings.SplitN(string(query), "@", 2)[0], "+")
			jid, hasJID = types.NewJID(number, types.DefaultUserServer), true
		}
		if !hasJID {
			continue
		}
		acct := s.account(jid)
		out := jid.ToNonAD()
		if acct != nil && out.Server != types.HiddenUserServer {
			out = acct.PN
		}
		var children []waBinary.Node
		for _, p := range protocols {
			switch p {
			case "devices":
				var list []waBinary.Node
				if acct != nil {
					for _, id := range acct.deviceIDs() {
						list = append(list, waBinary.Node{Tag: "device", Attrs: waBinary.Attrs{"id": int(id)}})
					}
				}
				children = append(children, waBinary.Node{Tag: "devices", Content: []waBinary.Node{{Tag: "device-list", Content: list}}})
			case "contact":
				typ := "out"
				if acct != nil {
					typ = "in"
				}
				children = append(children, waBinary.Node{Tag: "contact", Attrs: waBinary.Attrs{"type": typ}, Content: query})
			case "lid":
				n := waBinary.Node{Tag: "lid"}
				if acct != nil {
					n.Attrs = waBinary.Attrs{"val": acct.LID}
				}
				children = append(children, n)
			default:
				children = append(children, waBinary.Node{Tag: p})
			}
		}
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": out}, Content: children})
	}
	return iqResult(iq, waBinary.Node{Tag: "usync", Attrs: waBinary.Attrs{"sid": q.Attrs["sid"], "index": "0", "last": "true", "mode": q.Attrs["mode"], "context": q.Attrs["context"]},
		Content: []waBinary.Node{{Tag: "result"}, {Tag: "list", Content: users}}})
}
