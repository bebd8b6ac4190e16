package whatsapp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waHistorySync"
	"go.mau.fi/whatsmeow/proto/waWeb"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// History backfill (whatsapp.backfill). After a login, the phone sends the
// linked device its recent history (history sync notifications, which
// whatsmeow leaves to the connector: ManualHistorySyncDownload); `backfill
// N` asks the phone for more of one chat (an on-demand history sync). Each
// conversation's messages go to the router oldest first as history
// (bridge.Event.History): only Matrix portals receive them, never an SMS
// leg, no further back than the conversation's retention, and a message
// already bridged (live, or by an earlier sync) is dropped as a duplicate.
//
// The relay account never backfills: its history holds every stranger's
// chat with the bridge's number, which belongs to nobody on Matrix.
//
// Messages that arrive while the bridge is down are not history: whatsmeow
// delivers them as ordinary (offline) messages on reconnect, in order, and
// they cross live to every leg, notifications included, like any message
// the user has not seen yet. If one of them is also in a later history
// sync, that copy is a duplicate and dropped.

// historyClient is what the connector needs of whatsmeow for history;
// *whatsmeow.Client has it. A Client without it (a test fake that does
// not simulate the phone) gets no history.
type historyClient interface {
	DownloadHistorySync(ctx context.Context, notif *waE2E.HistorySyncNotification, synchronousStorage bool) (*waHistorySync.HistorySync, error)
	BuildHistorySyncRequest(lastKnownMessageInfo *types.MessageInfo, count int) *waE2E.Message
}

var _ historyClient = (*whatsmeow.Client)(nil)

// historyState counts, per account, the portals history syncs opened in
// this process (whatsapp.backfill.max_conversations).
type historyState struct {
	mu     sync.Mutex
	opened map[string]int
	// live holds the chats whose first live message in this process was
	// noted as a possible oldest message (noteFirstLive).
	live sync.Map
}

// take reports whether account may open one more portal, and counts it.
func (h *historyState) take(account string, limit int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.opened == nil {
		h.opened = map[string]int{}
	}
	if h.opened[account] >= limit {
		return false
	}
	h.opened[account]++
	return true
}

// backfills reports whether account's history is bridged.
func (c *Connector) backfills(account string) bool {
	return c.cfg.Backfill.Enabled && account != RelayAccount
}

// historyNotification downloads the history a notification announces and
// bridges it. It runs on the login's event goroutine, so the notification
// is acknowledged (and live messages handled) only after its history was
// accepted; false leaves it unacknowledged, for WhatsApp to send again.
func (c *Connector) historyNotification(ctx context.Context, l *login, notif *waE2E.HistorySyncNotification) bool {
	if !c.backfills(l.account) {
		return true
	}
	hc, ok := l.client.(historyClient)
	if !ok {
		return true
	}
	data, err := hc.DownloadHistorySync(ctx, notif, true)
	if err != nil {
		c.log.Warn().Err(errors.New(scrub(err.Error()))).Str("account", c.accountRef(l.account)).Msg("Failed to download WhatsApp history")
		return true
	}
	return c.handleHistorySync(ctx, l, data)
}

// handleHistorySync bridges the conversations of one history sync blob,
// most recently active first (which is the order portals are opened in).
func (c *Connector) handleHistorySync(ctx context.Context, l *login, data *waHistorySync.HistorySync) bool {
	if !c.backfills(l.account) || data == nil {
		return true
	}
	typ := data.GetSyncType()
	switch typ {
	case waHistorySync.HistorySync_INITIAL_BOOTSTRAP, waHistorySync.HistorySync_RECENT,
		waHistorySync.HistorySync_FULL, waHistorySync.HistorySync_ON_DEMAND:
	default:
		return true // push names, status, settings: nothing for a chat
	}
	convs := slices.Clone(data.GetConversations())
	slices.SortStableFunc(convs, func(a, b *waHistorySync.Conversation) int {
		return compareUint(lastActive(b), lastActive(a))
	})
	log := c.log.With().Str("account", c.accountRef(l.account)).Str("sync_type", typ.String()).Logger()
	ctx = log.WithContext(ctx)
	total := 0
	for _, conv := range convs {
		n, ok := c.backfillConversation(ctx, l, conv, typ == waHistorySync.HistorySync_ON_DEMAND)
		if !ok {
			return false
		}
		total += n
	}
	log.Info().Int("conversations", len(convs)).Int("messages", total).Msg("WhatsApp history bridged")
	return true
}

func lastActive(conv *waHistorySync.Conversation) uint64 {
	return max(conv.GetLastMsgTimestamp(), conv.GetConversationTimestamp())
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// historyChatJID is the JID a history conversation is recorded under: as
// for live messages (chatJID), a one-to-one chat known by its LID goes
// under the phone-number JID when the sync gives it.
func historyChatJID(conv *waHistorySync.Conversation) (types.JID, bool) {
	jid, err := types.ParseJID(conv.GetID())
	if err != nil || jid.User == "" {
		return types.EmptyJID, false
	}
	switch jid.Server {
	case types.BroadcastServer, types.NewsletterServer:
		return types.EmptyJID, false // status updates and channels are not chats
	case types.HiddenUserServer:
		if pn, err := types.ParseJID(conv.GetPnJID()); err == nil && pn.Server == types.DefaultUserServer {
			return pn.ToNonAD(), true
		}
	}
	return jid.ToNonAD(), true
}

// historyMessage is the event whatsmeow emits for a live message, built
// from a history sync's copy (what Client.ParseWebMessage does, with the
// account's own JID from the login).
func historyMessage(chat, own types.JID, web *waWeb.WebMessageInfo) (*events.Message, bool) {
	key := web.GetKey()
	if key.GetID() == "" || web.GetMessage() == nil {
		return nil, false // stubs: group created, member added…
	}
	info := types.MessageInfo{
		MessageSource: types.MessageSource{Chat: chat, IsFromMe: key.GetFromMe(), IsGroup: chat.Server == types.GroupServer},
		ID:            key.GetID(),
		PushName:      web.GetPushName(),
		Timestamp:     time.Unix(int64(web.GetMessageTimestamp()), 0),
	}
	var err error
	switch {
	case info.IsFromMe:
		info.Sender = own.ToNonAD()
	case !info.IsGroup:
		info.Sender = chat
	case web.GetParticipant() != "":
		info.Sender, err = types.ParseJID(web.GetParticipant())
	case key.GetParticipant() != "":
		info.Sender, err = types.ParseJID(key.GetParticipant())
	default:
		return nil, false
	}
	if err != nil || info.Sender.IsEmpty() {
		return nil, false
	}
	evt := &events.Message{Info: info, RawMessage: web.GetMessage(), SourceWebMsg: web}
	return evt.UnwrapRaw(), true
}

// backfillConversation bridges one conversation's messages as history and
// returns how many it submitted; false means the router could not accept
// them for a reason a redelivery may fix.
func (c *Connector) backfillConversation(ctx context.Context, l *login, conv *waHistorySync.Conversation, onDemand bool) (int, bool) {
	jid, ok := historyChatJID(conv)
	if !ok {
		return 0, true
	}
	chat, err := c.ensureChat(ctx, l.account, jid)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to record WhatsApp chat")
		return 0, false
	}
	log := zerolog.Ctx(ctx).With().Str("chat", string(chat)).Logger()
	ctx = log.WithContext(ctx)
	leg := bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat}

	var msgs []*events.Message
	var oldest *events.Message
	for _, m := range conv.GetMessages() {
		evt, ok := historyMessage(jid, l.jid, m.GetMessage())
		if !ok {
			continue
		}
		if oldest == nil || evt.Info.Timestamp.Before(oldest.Info.Timestamp) {
			oldest = evt
		}
		msgs = append(msgs, evt)
	}
	slices.SortStableFunc(msgs, func(a, b *events.Message) int { return a.Info.Timestamp.Compare(b.Info.Timestamp) })
	var out []*bridge.Event
	var senders []*events.Message
	for _, evt := range msgs {
		if e := c.historyEvent(l, leg, evt); e != nil {
			out = append(out, e)
			senders = append(senders, evt)
		}
	}
	if limit := c.cfg.Backfill.MaxMessagesPerChat; limit > 0 && len(out) > limit {
		out, senders = out[len(out)-limit:], senders[len(senders)-limit:]
	}
	if oldest != nil {
		c.noteOldest(ctx, chat, oldest.Info)
	}
	if len(out) == 0 {
		return 0, true
	}
	// The chat's WhatsApp timer is part of its retention: recorded first,
	// so nothing older than it is written.
	timer := time.Duration(conv.GetEphemeralExpiration()) * time.Second
	if timer > 0 {
		c.chatTimer(ctx, leg, timer)
	}
	errs := c.submitHistory(ctx, out)
	if len(errs) > 0 && errors.Is(errs[0], bridge.ErrUnknownLeg) {
		if onDemand || !c.openForHistory(ctx, l, conv, jid, chat, senders) {
			log.Debug().Int("messages", len(out)).Msg("WhatsApp history of a chat without portal not bridged")
			return 0, true
		}
		if timer > 0 {
			c.chatTimer(ctx, leg, timer)
		}
		errs = c.submitHistory(ctx, out)
	}
	n := 0
	for i, err := range errs {
		switch {
		case err == nil:
			n++
			if evt := senders[i]; evt.Info.IsGroup {
				sender := evt.Info.Sender.ToNonAD()
				c.senders.put(l.account, evt.Info.ID, sender)
				if err := c.storeSender(ctx, chat, evt.Info.ID, sender); err != nil {
					log.Warn().Err(err).Msg("Failed to record WhatsApp message sender")
				}
			}
		case errors.Is(err, bridge.ErrDatabase), errors.Is(err, bridge.ErrStopped):
			log.Error().Err(err).Msg("Router could not accept WhatsApp history; WhatsApp will send it again")
			return n, false
		default:
			log.Debug().Err(err).Msg("WhatsApp history message not bridged")
		}
	}
	c.metrics.messages.WithLabelValues("in", "history").Add(float64(n))
	return n, true
}

// historyEvent converts one history message as handleMessage converts a
// live one; nil for what history does not carry (edits, reactions,
// deletes, timer changes, poll votes, view-once media).
func (c *Connector) historyEvent(l *login, leg bridge.Leg, evt *events.Message) *bridge.Event {
	in, ok := parseMessage(evt.Message)
	if !ok || in.Kind != bridge.KindMessage || in.Content == nil || in.ChatTimer != nil || evt.IsViewOnce || in.ViewOnce {
		return nil
	}
	if in.Content.Type == bridge.MsgPollVote {
		return nil
	}
	src := evt.Info.MessageSource
	sender := c.contact(src.Sender, src.SenderAlt, evt.Info.PushName)
	if src.IsFromMe {
		sender = c.pseudo.Phone(userE164(l.jid))
		sender.DisplayName = "You (from WhatsApp)"
	}
	out := &bridge.Event{
		Kind:      bridge.KindMessage,
		Source:    leg,
		SourceID:  bridge.RemoteID(evt.Info.ID),
		Sender:    sender,
		Timestamp: evt.Info.Timestamp,
		Content:   in.Content,
		ReplyTo:   bridge.RemoteID(in.ReplyTo),
		Timer:     in.Timer,
		History:   true,
	}
	c.nameMentions(out.Content, in.Mentioned)
	if in.Media != nil {
		in.Media.Account = l.account
		out.Content.Media.Ref = in.Media.encode()
	}
	return out
}

// submitHistory accepts a conversation's history in order, in one
// transaction when the host can (bridge.BatchSubmitter).
func (c *Connector) submitHistory(ctx context.Context, evts []*bridge.Event) []error {
	if bs, ok := c.host.(bridge.BatchSubmitter); ok {
		return bs.SubmitBatch(ctx, evts)
	}
	errs := make([]error, len(evts))
	for i, evt := range evts {
		errs[i] = c.host.Submit(ctx, evt)
	}
	return errs
}

// openForHistory opens a portal for a chat that has history but no
// conversation, as a live message would (Hooks.OnUnrouted), while the
// login's history syncs have opened fewer than
// whatsapp.backfill.max_conversations.
func (c *Connector) openForHistory(ctx context.Context, l *login, conv *waHistorySync.Conversation, jid types.JID, chat bridge.ChatID, msgs []*events.Message) bool {
	if c.hooks.OnUnrouted == nil || !c.history.take(l.account, c.cfg.Backfill.MaxConversations) {
		return false
	}
	u := Unrouted{Account: l.account, Chat: chat, Group: jid.Server == types.GroupServer}
	if u.Group {
		u.Name = strings.TrimSpace(conv.GetName())
		if u.Name == "" {
			u.Name = c.groupName(ctx, l, chat)
		}
		if phone.Contains(u.Name) {
			u.Name = "WhatsApp group" // a subject that is (or holds) a number
		}
	} else {
		push := ""
		for _, m := range msgs {
			if !m.Info.IsFromMe && m.Info.PushName != "" {
				push = m.Info.PushName
			}
		}
		u.Contact = c.contact(jid, types.EmptyJID, push)
	}
	if _, err := c.hooks.OnUnrouted(ctx, u); err != nil {
		zerolog.Ctx(ctx).Info().Err(err).Msg("No portal opened for WhatsApp history")
		return false
	}
	return true
}
