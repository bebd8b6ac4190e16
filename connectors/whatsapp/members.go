package whatsapp

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Notices a group notification becomes in the conversation, sent as the
// participant concerned. They hold no number: participants are named by
// their pseudonyms.
const (
	noticeLeft     = "left the WhatsApp group; messages sent here no longer reach them."
	noticeRemoved  = "was removed from the WhatsApp group; messages sent here no longer reach them."
	noticeJoined   = "joined the WhatsApp group; messages sent here reach them from now on."
	noticeSelfLeft = "This chat's WhatsApp account is no longer in the WhatsApp group, so messages sent here reach no one there."
	noticeDeleted  = "The WhatsApp group was deleted; messages sent here reach no one there."
)

// handleGroupInfo applies a group notification of a chat the bridge
// knows: a timer change becomes the leg's retention policy, and members
// leaving, being removed or joining (and the group's deletion) become
// notices in the conversation, so that nobody keeps writing to a group
// their contact has left without knowing it (a relay group holds the
// contact alone). It returns false when the router could not take a
// notice, so that WhatsApp delivers the notification again.
func (c *Connector) handleGroupInfo(ctx context.Context, l *login, evt *events.GroupInfo) bool {
	chat := bridge.ChatID(c.keys.chatID(l.account, evt.JID.ToNonAD().String()))
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		return true // a group no message has reached yet: nothing to tell
	}
	leg := bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat}
	log := c.log.With().Str("chat", string(chat)).Logger()
	ctx = log.WithContext(ctx)
	if evt.Ephemeral != nil {
		// A group's timer changes by a group notification, not a
		// protocol message.
		d := time.Duration(0)
		if evt.Ephemeral.IsEphemeral {
			d = time.Duration(evt.Ephemeral.DisappearingTimer) * time.Second
		}
		c.chatTimer(ctx, leg, d)
	}
	if !c.trackContact(ctx, row, evt) || !c.groupChanges(ctx, l, leg, evt, true) {
		return false
	}
	for _, n := range c.memberNotices(l, evt) {
		out := &bridge.Event{
			Kind: bridge.KindMessage, Source: leg, Sender: n.sender, Timestamp: evt.Timestamp,
			// The same notification delivered again has the same ID.
			SourceID: bridge.RemoteID("member." + n.what + "." + string(n.sender.ID) + "." + evt.Timestamp.UTC().Format("20060102150405.000")),
			Content:  &bridge.Content{Type: bridge.MsgNotice, Body: n.body},
		}
		err := c.host.Submit(ctx, out)
		switch {
		case errors.Is(err, bridge.ErrUnknownLeg):
			return true // the group is in no conversation
		case errors.Is(err, bridge.ErrRefused):
			continue // the admission policy (a block, say) applies to notices too
		case err != nil:
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Router did not take a WhatsApp group notice; WhatsApp will deliver it again")
			return false
		}
	}
	return c.groupChanges(ctx, l, leg, evt, false)
}

// trackContact records a relay group's contact (the chat's contact_hash)
// leaving or rejoining it, so that messages are refused while they are
// out (ErrContactLeftGroup). Members are matched by phone-number JID; it
// returns false when the change could not be stored.
func (c *Connector) trackContact(ctx context.Context, row *chatRow, evt *events.GroupInfo) bool {
	if !row.group || row.contact == "" {
		return true
	}
	is := func(jids []types.JID) bool {
		for _, jid := range jids {
			if e164 := userE164(jid); e164 != "" && c.keys.numberHash(e164) == row.contact {
				return true
			}
		}
		return false
	}
	left := row.contactLeft
	switch {
	case is(evt.Join):
		left = false
	case is(evt.Leave):
		left = true
	}
	if left == row.contactLeft {
		return true
	}
	if _, err := c.db.Exec(ctx, contactLeftQuery, row.id, left); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to record a relay group's contact leaving or rejoining; WhatsApp will deliver it again")
		return false
	}
	return true
}

// selfAccount is what bridge.Sender.Self holds for what a login's own
// account sends: the Matrix user whose login it is (double puppeting); ""
// for the relay account, which is nobody's own.
func selfAccount(l *login) string {
	if l.account == RelayAccount {
		return ""
	}
	return l.account
}

type memberNotice struct {
	what   string // left, removed, joined, self, deleted
	sender bridge.Sender
	body   string
}

// memberNotices lists what a group notification tells the conversation.
// The account's own joining is not news; its leaving is.
func (c *Connector) memberNotices(l *login, evt *events.GroupInfo) []memberNotice {
	self := c.pseudo.Phone(userE164(l.jid))
	self.DisplayName = "You (from WhatsApp)"
	self.Self = selfAccount(l)
	if l.account == RelayAccount {
		self.DisplayName = "WhatsApp relay"
	}
	isSelf := func(jid types.JID) bool {
		return !l.jid.IsEmpty() && jid.User == l.jid.User && jid.Server == l.jid.Server
	}
	var by types.JID
	if evt.Sender != nil {
		by = evt.Sender.ToNonAD()
	}
	var out []memberNotice
	if evt.Delete != nil {
		out = append(out, memberNotice{"deleted", self, noticeDeleted})
	}
	for _, jid := range evt.Leave {
		jid = jid.ToNonAD()
		switch {
		case isSelf(jid):
			out = append(out, memberNotice{"self", self, noticeSelfLeft})
		case by.IsEmpty() || by == jid:
			out = append(out, memberNotice{"left", c.contact(jid, types.EmptyJID, ""), noticeLeft})
		default:
			out = append(out, memberNotice{"removed", c.contact(jid, types.EmptyJID, ""), noticeRemoved})
		}
	}
	for _, jid := range evt.Join {
		if jid = jid.ToNonAD(); !isSelf(jid) {
			out = append(out, memberNotice{"joined", c.contact(jid, types.EmptyJID, ""), noticeJoined})
		}
	}
	return out
}
