package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// handleEvent is a login's whatsmeow event handler. whatsmeow calls it on
// one goroutine per client, in order; with SynchronousAck a message is
// acknowledged to WhatsApp only after this returns, that is after the
// router accepted it.
func (c *Connector) handleEvent(l *login, raw any) (ok bool) {
	ok = true
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Str("event", typeName(raw)).Msg("WhatsApp event handler panicked")
			ok = true // the same event would panic again
		}
	}()
	ctx := c.baseCtx()
	switch evt := raw.(type) {
	case *events.Message:
		return c.handleMessage(ctx, l, evt)
	case *events.Receipt:
		c.handleReceipt(ctx, l, evt)
	case *events.ChatPresence:
		c.handlePresence(ctx, l, evt)
	case *events.PairSuccess:
		c.pairSuccess(ctx, l, evt)
	case *events.GroupInfo:
		return c.handleGroupInfo(ctx, l, evt)
	case *events.HistorySync:
		return c.handleHistorySync(ctx, l, evt.Data)
	case *events.Picture:
		return c.handlePicture(ctx, l, evt)
	case *events.Connected:
		c.mu.Lock()
		l.failures = 0
		c.mu.Unlock()
		c.setState(ctx, l, StateConnected, "")
	case *events.Disconnected:
		if st := c.stateOf(l); st == StateConnected {
			c.setState(ctx, l, StateConnecting, "connection lost; reconnecting")
		}
	case *events.KeepAliveTimeout:
		c.setState(ctx, l, StateConnecting, "keep-alive timed out")
	case *events.LoggedOut:
		if evt.OnConnect && evt.Reason == events.ConnectFailureUnknownLogout {
			// 406: what WhatsApp Web calls BANNED.
			c.loggedOut(ctx, l, "WhatsApp ended this login and reports the account as banned ("+evt.Reason.String()+"); the session was deleted. Check the account on your phone.")
			c.setState(ctx, l, StateBanned, "banned: logged out by WhatsApp")
			break
		}
		c.loggedOut(ctx, l, "WhatsApp logged this bridge out (the linked device was removed, or the session expired); the session was deleted. Send `login whatsapp` to log in again.")
	case *events.TemporaryBan:
		c.setState(ctx, l, StateBanned, evt.String())
		c.log.Warn().Str("account", c.accountRef(l.account)).Int("code", int(evt.Code)).Dur("expires_in", evt.Expire).Msg("WhatsApp account temporarily banned")
		expiry := "The bridge reconnects once the ban expires."
		if evt.Expire > 0 {
			expiry = "The ban expires in " + evt.Expire.Round(time.Minute).String() + "; the bridge reconnects then."
		}
		c.tell(l.account, "WhatsApp temporarily banned this account from linked devices (reason "+evt.Code.String()+"). "+expiry)
		if evt.Expire > 0 {
			c.reconnectAfter(l, evt.Expire)
		}
	case *events.ClientOutdated:
		c.setState(ctx, l, StateOutdated, "client outdated")
		c.log.Error().Str("account", c.accountRef(l.account)).Msg("WhatsApp says the client is outdated; update switchboard")
		c.tell(l.account, "WhatsApp refused the bridge's connection because its WhatsApp client is outdated. The bridge admin must update switchboard; your login is kept.")
	case *events.StreamReplaced:
		c.setState(ctx, l, StateReplaced, "another client took over the session")
		c.log.Warn().Str("account", c.accountRef(l.account)).Msg("WhatsApp session was taken over by another connection")
		c.tell(l.account, "Another connection took over this bridge's WhatsApp session, so the bridge stopped receiving. If that was not you, send `logout whatsapp` and log in again.")
	case *events.ConnectFailure:
		c.setState(ctx, l, StateConnecting, "connect failure "+evt.Reason.String())
		c.reconnectAfter(l, c.backoff(l))
	}
	return true
}

func (c *Connector) baseCtx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx != nil {
		return c.ctx
	}
	return c.log.WithContext(context.Background())
}

func (c *Connector) stateOf(l *login) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return l.state
}

// loggedOut handles a login WhatsApp ended: whatsmeow already deleted its
// device; the connector deletes what remains and tells the user.
func (c *Connector) loggedOut(ctx context.Context, l *login, text string) {
	c.setState(ctx, l, StateLoggedOut, "logged out")
	c.log.Warn().Str("account", c.accountRef(l.account)).Msg("WhatsApp login ended by WhatsApp; deleting the session")
	if !l.jid.IsEmpty() {
		if err := c.sessions.Delete(ctx, l.jid); err != nil {
			c.log.Warn().Err(err).Msg("Failed to delete WhatsApp session")
		}
	}
	c.mu.Lock()
	current := c.logins[l.account] == l
	c.mu.Unlock()
	if current {
		// The relay's row goes too, but /health keeps saying it was
		// logged out until it logs in again.
		if err := c.deleteAccount(ctx, l.account); err != nil {
			c.log.Warn().Err(err).Msg("Failed to delete WhatsApp login")
		}
		if l.account != RelayAccount {
			c.mu.Lock()
			delete(c.logins, l.account)
			c.mu.Unlock()
		}
	}
	c.tell(l.account, text)
}

// contact returns the participant behind a WhatsApp user: the pseudonym
// of their number (the same one SMS uses), named by their push name
// unless it looks like a number.
func (c *Connector) contact(jid, alt types.JID, pushName string) bridge.Sender {
	e164 := userE164(jid)
	if e164 == "" {
		e164 = userE164(alt)
	}
	var s bridge.Sender
	if e164 != "" {
		s = c.pseudo.Phone(e164)
	} else {
		// A LID without a known number: a pseudonym of the LID, which
		// is not a phone number but is kept as opaque all the same.
		s = c.pseudo.Phone("lid:" + jid.ToNonAD().String())
	}
	if name := strings.TrimSpace(pushName); name != "" && !phone.Contains(name) {
		s.DisplayName = name
	}
	return s
}

// chatJID is the JID a message's chat is recorded under: for one-to-one
// chats addressed by LID, the phone-number JID when whatsmeow knows it,
// so the chat keeps one ID.
func chatJID(src types.MessageSource) types.JID {
	chat := src.Chat.ToNonAD()
	if chat.Server == types.HiddenUserServer && !src.IsGroup {
		if !src.IsFromMe && src.SenderAlt.Server == types.DefaultUserServer {
			return src.SenderAlt.ToNonAD()
		}
		if src.IsFromMe && src.RecipientAlt.Server == types.DefaultUserServer {
			return src.RecipientAlt.ToNonAD()
		}
	}
	return chat
}

var mentionPattern = regexp.MustCompile(`@[0-9]{5,}`)

func (c *Connector) handleMessage(ctx context.Context, l *login, evt *events.Message) bool {
	src := evt.Info.MessageSource
	if src.Chat.Server == types.BroadcastServer || src.Chat.Server == types.NewsletterServer {
		return true // status updates and channels are not chats
	}
	if notif := evt.Message.GetProtocolMessage().GetHistorySyncNotification(); notif != nil {
		return c.historyNotification(ctx, l, notif) // backfill.go
	}
	if src.IsFromMe && l.account == RelayAccount {
		return true // the relay's own phone: not a participant
	}
	in, ok := parseMessage(evt.Message)
	if !ok {
		return true
	}
	if (evt.IsViewOnce || in.ViewOnce) && in.Media != nil {
		// View-once media is meant to be seen once, on the phone.
		in = incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgNotice,
			Body: "Sent view-once media, which the bridge does not forward; open WhatsApp to see it."}}
	}
	jid := chatJID(src)
	chat, err := c.ensureChat(ctx, l.account, jid)
	if err != nil {
		c.log.Error().Err(err).Msg("Failed to record WhatsApp chat")
		return false
	}
	log := c.log.With().Str("chat", string(chat)).Str("message_id", evt.Info.ID).Logger()
	ctx = log.WithContext(ctx)
	c.senders.put(l.account, evt.Info.ID, src.Sender.ToNonAD())
	if src.IsGroup && in.Kind == bridge.KindMessage {
		// What Matrix users can reply or react to. In one-to-one chats
		// the chat is the sender (see participant).
		if err = c.storeSender(ctx, chat, evt.Info.ID, src.Sender.ToNonAD()); err != nil {
			log.Warn().Err(err).Msg("Failed to record WhatsApp message sender")
		}
	}
	if ok, err := c.richContent(ctx, l, chat, evt, &in); err != nil {
		log.Error().Err(err).Msg("Failed to handle a WhatsApp poll; WhatsApp will deliver it again")
		return false
	} else if !ok {
		return true
	}
	leg := bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat}

	if in.ChatTimer != nil {
		c.chatTimer(ctx, leg, *in.ChatTimer)
		return true
	}

	sender := c.contact(src.Sender, src.SenderAlt, evt.Info.PushName)
	if src.IsFromMe {
		sender = c.pseudo.Phone(userE164(l.jid))
		sender.DisplayName = "You (from WhatsApp)"
		sender.Self = selfAccount(l)
	}
	out := &bridge.Event{
		Kind:      in.Kind,
		Source:    leg,
		SourceID:  bridge.RemoteID(evt.Info.ID),
		Sender:    sender,
		Timestamp: evt.Info.Timestamp,
		Content:   in.Content,
		ReplyTo:   bridge.RemoteID(in.ReplyTo),
		Target:    bridge.RemoteID(in.Target),
		Reaction:  in.Reaction,
		Timer:     in.Timer,
	}
	removed := ""
	if in.Kind == bridge.KindReaction {
		key := string(chat) + "\x00" + string(sender.ID) + "\x00" + in.Target
		if in.Reaction != "" {
			if err = c.rememberContactReaction(ctx, l.account, chat, key, evt.Info.ID); err != nil {
				log.Warn().Err(err).Msg("Failed to record WhatsApp reaction; its removal will not cross after a restart")
			}
		} else if id, ok, err := c.contactReaction(ctx, l.account, key); err != nil {
			log.Error().Err(err).Msg("Failed to look up a removed WhatsApp reaction; WhatsApp will deliver it again")
			return false
		} else if ok {
			// WhatsApp removes a reaction by reacting with nothing; the
			// router deletes the reaction it delivered.
			out.Kind, out.Target, out.Reaction = bridge.KindDelete, bridge.RemoteID(id), ""
			removed = key
		} else {
			return true // a reaction the bridge no longer remembers
		}
	}
	if in.Kind == bridge.KindEdit && out.Target == out.SourceID {
		out.SourceID += bridge.RemoteID(".edit." + evt.Info.Timestamp.Format("20060102150405.000"))
	}
	if out.Content != nil {
		c.nameMentions(out.Content, in.Mentioned)
		if in.Media != nil {
			in.Media.Account = l.account
			out.Content.Media.Ref = in.Media.encode()
		}
	}
	if !c.submit(ctx, l, out, src.IsGroup) {
		return false
	}
	if out.Kind == bridge.KindMessage {
		c.noteFirstLive(ctx, chat, evt.Info) // where `backfill` asks from
	}
	if removed != "" {
		if err = c.forgetContactReaction(ctx, l.account, removed); err != nil {
			log.Warn().Err(err).Msg("Failed to delete a removed WhatsApp reaction")
		}
	}
	if in.Timer > 0 {
		// Every message of a chat with a timer carries it (only a
		// protocol message turns it off).
		c.chatTimer(ctx, leg, in.Timer)
	}
	return true
}

// nameMentions replaces "@<number>" mentions with the mentioned person's
// pseudonymous name, so no number crosses in a body.
func (c *Connector) nameMentions(ct *bridge.Content, mentioned []string) {
	names := map[string]string{}
	for _, m := range mentioned {
		jid, err := types.ParseJID(m)
		if err != nil || jid.User == "" {
			continue
		}
		names["@"+jid.User] = "@" + c.contact(jid, types.EmptyJID, "").DisplayName
	}
	replace := func(s string) string {
		return mentionPattern.ReplaceAllStringFunc(s, func(m string) string {
			if n, ok := names[m]; ok {
				return n
			}
			return "@" + phone.Redact(m[1:])
		})
	}
	ct.Body = replace(ct.Body)
	if ct.HTML != "" {
		ct.HTML = replace(ct.HTML)
	}
}

// submit hands an event to the router; a chat no conversation holds goes
// to Hooks.OnUnrouted first. It returns false when the router could not
// accept the event for a reason a redelivery may fix.
func (c *Connector) submit(ctx context.Context, l *login, out *bridge.Event, group bool) bool {
	log := zerolog.Ctx(ctx)
	err := c.host.Submit(ctx, out)
	if errors.Is(err, bridge.ErrUnknownLeg) && out.Kind == bridge.KindMessage && c.hooks.OnUnrouted != nil {
		u := Unrouted{Account: l.account, Chat: out.Source.Chat, Contact: out.Sender, Group: group}
		if group {
			u.Name = c.groupName(ctx, l, out.Source.Chat)
		}
		if _, herr := c.hooks.OnUnrouted(ctx, u); errors.Is(herr, ErrNoRecipient) {
			c.metrics.messages.WithLabelValues("in", "undeliverable").Inc()
			log.Info().Msg("WhatsApp message nobody on the bridge can receive; not kept")
			if !group {
				c.tellUndeliverable(ctx, l, out.Source.Chat)
			}
			return true
		} else if herr != nil {
			c.metrics.messages.WithLabelValues("in", "retry").Inc()
			log.Error().Err(herr).Msg("Could not open a conversation for a WhatsApp chat; WhatsApp will deliver the message again")
			return false
		}
		if group {
			c.initialGroupInfo(ctx, l, out.Source.Chat) // groupinfo.go
		}
		err = c.host.Submit(ctx, out)
	}
	result := "dropped"
	defer func() { c.metrics.messages.WithLabelValues("in", result).Inc() }()
	switch {
	case err == nil:
		result = "accepted"
	case errors.Is(err, bridge.ErrUnknownLeg):
		log.Debug().Msg("WhatsApp message in a chat without conversation; dropped")
	case errors.Is(err, bridge.ErrTargetUnknown):
		log.Debug().Str("kind", string(out.Kind)).Msg("WhatsApp event refers to a message the bridge does not know; dropped")
	case errors.Is(err, bridge.ErrInvalidEvent):
		log.Warn().Err(err).Str("kind", string(out.Kind)).Msg("Invalid WhatsApp event dropped")
	default:
		log.Error().Err(err).Str("kind", string(out.Kind)).Msg("Router could not accept a WhatsApp event; WhatsApp will deliver it again")
		result = "retry"
		return false
	}
	return true
}

// groupName is a group's subject ("WhatsApp group" when it cannot be
// fetched).
func (c *Connector) groupName(ctx context.Context, l *login, chat bridge.ChatID) string {
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		return "WhatsApp group"
	}
	info, err := l.client.GetGroupInfo(ctx, row.jid)
	if err != nil || strings.TrimSpace(info.Name) == "" {
		return "WhatsApp group"
	}
	return info.Name
}

// chatTimer records a chat's disappearing timer and reports it as the
// leg's timer when it changed.
func (c *Connector) chatTimer(ctx context.Context, leg bridge.Leg, d time.Duration) {
	row, err := c.loadChat(ctx, leg.Chat)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to load WhatsApp chat for its timer")
		return
	}
	if row.timer == d.Milliseconds() {
		return
	}
	if c.hooks.OnChatTimer != nil {
		if err = c.hooks.OnChatTimer(ctx, leg, d); errors.Is(err, bridge.ErrUnknownLeg) {
			return // recorded once the chat joins a conversation
		} else if err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to report WhatsApp chat timer")
			return
		}
	}
	if _, err = c.db.Exec(ctx, chatTimerQuery, leg.Chat, d.Milliseconds()); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to record WhatsApp chat timer")
		return
	}
	zerolog.Ctx(ctx).Debug().Dur("timer", d).Msg("WhatsApp chat timer changed")
}

func (c *Connector) handleReceipt(ctx context.Context, l *login, evt *events.Receipt) {
	if evt.Type != types.ReceiptTypeRead || evt.IsFromMe {
		return // delivery receipts, and the user reading on their phone
	}
	chat, err := c.ensureChat(ctx, l.account, chatJID(evt.MessageSource))
	if err != nil {
		return
	}
	sender := c.contact(evt.Sender, evt.SenderAlt, "")
	for _, msgID := range evt.MessageIDs {
		err = c.host.Submit(ctx, &bridge.Event{
			Kind:      bridge.KindReadReceipt,
			Source:    bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat},
			SourceID:  bridge.RemoteID("read." + msgID + "." + string(sender.ID)),
			Sender:    sender,
			Timestamp: evt.Timestamp,
			Target:    bridge.RemoteID(msgID),
		})
		if err != nil && !errors.Is(err, bridge.ErrUnknownLeg) {
			c.log.Debug().Err(err).Msg("Read receipt not accepted")
		}
	}
}

func (c *Connector) handlePresence(ctx context.Context, l *login, evt *events.ChatPresence) {
	if evt.IsFromMe {
		return
	}
	chat, err := c.ensureChat(ctx, l.account, chatJID(evt.MessageSource))
	if err != nil {
		return
	}
	_ = c.host.Submit(ctx, &bridge.Event{
		Kind:   bridge.KindTyping,
		Source: bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat},
		Sender: c.contact(evt.Sender, evt.SenderAlt, ""),
		Typing: evt.State == types.ChatPresenceComposing,
	})
}

// senderCache remembers in memory who sent recent messages, which
// WhatsApp needs to quote, react to or mark them read in groups; behind
// it, sb_whatsapp_sender keeps groups' senders (storeSender). Own
// messages are recognised by their ID (see Connector.ownID) and
// one-to-one chats need no cache.
type senderCache struct {
	mu    sync.Mutex
	max   int
	order []string
	m     map[string]types.JID
}

func (s *senderCache) put(account, msgID string, sender types.JID) {
	if sender.IsEmpty() {
		return
	}
	key := account + "\x00" + msgID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]types.JID{}
	}
	if _, ok := s.m[key]; !ok {
		s.order = append(s.order, key)
	}
	s.m[key] = sender
	for len(s.order) > s.max {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *senderCache) get(account, msgID string) (types.JID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.m[account+"\x00"+msgID]
	return j, ok
}

// idCache remembers in memory, for the latest entries, which WhatsApp
// reaction a contact's (chat, sender, target) is, so a removal can delete
// it; behind it is sb_whatsapp_contact_reaction (contactReaction).
type idCache struct {
	mu    sync.Mutex
	order []string
	m     map[string]string
}

func (s *idCache) put(account, key, v string) {
	k := account + "\x00" + key
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = v
	for len(s.order) > 4096 {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *idCache) del(account, key string) {
	k := account + "\x00" + key
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok {
		return
	}
	delete(s.m, k)
	if i := slices.Index(s.order, k); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

func (s *idCache) get(account, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[account+"\x00"+key]
	return v, ok
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "*events.")
}
