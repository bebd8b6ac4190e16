package whatsapp

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waHistorySync"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// sentTo is what the loopback received in chat, in delivery order.
func sentTo(sent []bridgetest.Sent, chat bridge.ChatID) []bridgetest.Sent {
	var out []bridgetest.Sent
	for _, s := range sent {
		if s.Chat == chat {
			out = append(out, s)
		}
	}
	return out
}

func sentBodies(sent []bridgetest.Sent) []string {
	out := make([]string, len(sent))
	for i, s := range sent {
		out[i] = s.Delivery.Event.Content.Body
	}
	return out
}

func (e *env) waitQueueEmpty() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		n, err := e.router.QueueDepth(e.ctx)
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "queue never drained")
}

// historyFixture is three chats of alice's: one with a portal that an SMS
// contact also joins (retention 7 days), a group and a one-to-one chat
// without portals.
type historyFixture struct {
	f                      *fakeClient
	chatA, chatB, chatC    bridge.ChatID
	roomA                  bridge.ChatID
	a1, a2, a3, a4, b1, b2 histMsg
	c1                     histMsg
	convs                  []*waHistorySync.Conversation
}

func newHistoryFixture(t *testing.T, e *env) *historyFixture {
	h := &historyFixture{f: e.login(alice, aliceJID)}
	h.chatA, h.chatB, h.chatC = e.chatOf(alice, contactJID), e.chatOf(alice, groupJID), e.chatOf(alice, otherJID)
	h.roomA = "!portal-a:example.org"
	conv, err := e.router.CreateConversation(e.ctx,
		bridge.Leg{Network: netMatrix, Chat: h.roomA},
		bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: h.chatA},
		bridge.Leg{Network: bridge.NetworkSMS, Chat: "sms-chat-a"})
	require.NoError(t, err)
	require.NoError(t, e.router.SetConversationRetention(e.ctx, conv, 7*24*time.Hour, false))

	now := time.Now().Truncate(time.Second)
	h.a1 = histMsg{id: "A1", body: "a1 older than retention", at: now.Add(-30 * 24 * time.Hour)}
	h.a2 = histMsg{id: "A2", body: "a2 three days ago", at: now.Add(-72 * time.Hour)}
	h.a3 = histMsg{id: "A3", body: "a3 from my phone", at: now.Add(-2 * time.Hour), fromMe: true}
	h.a4 = histMsg{id: "A4", body: "a4 already bridged live", at: now.Add(-time.Hour)}
	h.b1 = histMsg{id: "B1", sender: contactJID, body: "b1 group", at: now.Add(-5 * time.Hour)}
	h.b2 = histMsg{id: "B2", sender: otherJID, body: "b2 group", at: now.Add(-4 * time.Hour)}
	h.c1 = histMsg{id: "C1", body: "c1 one to one", at: now.Add(-50 * time.Minute)}
	h.convs = []*waHistorySync.Conversation{
		historyConv(contactJID, "", h.a4, h.a3, h.a2, h.a1),
		historyConv(groupJID, "Climbing", h.b2, h.b1),
		historyConv(otherJID, "", h.c1),
	}
	return h
}

// requireHistory checks that sent are msgs, as history at their WhatsApp
// times.
func requireHistory(t *testing.T, sent []bridgetest.Sent, msgs ...histMsg) {
	t.Helper()
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = m.body
	}
	require.Equal(t, want, sentBodies(sent))
	for i, s := range sent {
		require.True(t, s.Delivery.Event.History, "%s is marked as history", msgs[i].id)
		require.True(t, s.Delivery.Event.Timestamp.Equal(msgs[i].at), "%s keeps its WhatsApp time: %s", msgs[i].id, s.Delivery.Event.Timestamp)
	}
}

// TestHistorySyncFillsOnlyMatrixPortals: the history sync after a login
// fills the Matrix portals of three chats, oldest first at WhatsApp's
// times, and never the SMS leg of the conversation that has one; nothing
// older than a conversation's retention is written, a message already
// bridged live is not repeated, and a second sync duplicates nothing. No
// number and no body ends up in the database or the logs.
func TestHistorySyncFillsOnlyMatrixPortals(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			e := newEnv(t, db.opts...)
			h := newHistoryFixture(t, e)

			// A4 arrived live before the sync (an offline message, say).
			live := message(contactJID, contactJID, h.a4.id, text(h.a4.body))
			live.Info.Timestamp = h.a4.at
			require.True(t, h.f.dispatch(live))
			e.waitQueueEmpty()
			require.Equal(t, []string{h.a4.body}, sentBodies(e.sms.Sent()), "the live message reaches the SMS leg")

			require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, h.convs...)))
			e.waitQueueEmpty()

			sent := e.mx.Sent()
			a := sentTo(sent, h.roomA)
			require.Equal(t, []string{h.a4.body, h.a2.body, h.a3.body}, sentBodies(a), "live A4, then the history within retention, oldest first")
			require.False(t, a[0].Delivery.Event.History)
			requireHistory(t, a[1:], h.a2, h.a3)
			require.Equal(t, "You (from WhatsApp)", a[2].Delivery.Event.Sender.DisplayName)

			_, roomB := e.conversationOf(h.chatB)
			requireHistory(t, sentTo(sent, roomB.Chat), h.b1, h.b2)
			_, roomC := e.conversationOf(h.chatC)
			requireHistory(t, sentTo(sent, roomC.Chat), h.c1)

			require.Equal(t, []string{h.a4.body}, sentBodies(e.sms.Sent()), "no history reaches the SMS leg")
			var n int
			require.NoError(t, e.db.QueryRow(e.ctx, `SELECT count(*) FROM sb_message WHERE remote_id='A1'`).Scan(&n))
			require.Zero(t, n, "nothing is written of a message older than retention")

			// The same sync again (WhatsApp resends it after a reconnect)
			// adds nothing.
			before := len(e.mx.Sent())
			require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_RECENT, h.convs...)))
			e.waitQueueEmpty()
			require.Len(t, e.mx.Sent(), before)
			require.Len(t, e.sms.Sent(), 1)

			requireStoredNoNumbers(t, e)
			logs := e.logs.String()
			requireNoNumbers(t, logs, "the logs")
			for _, m := range []histMsg{h.a1, h.a2, h.a3, h.a4, h.b1, h.b2, h.c1} {
				require.NotContains(t, logs, m.body, "the logs hold a message body")
			}
			require.Contains(t, logs, "WhatsApp history bridged")
		})
	}
}

// TestHistoryLimits: a chat gets at most max_messages_per_chat messages
// of a sync (the newest), a sync opens at most max_conversations portals,
// and with backfill off nothing of it is bridged.
func TestHistoryLimits(t *testing.T) {
	e := newEnv(t)
	e.cfg.WhatsApp.Backfill.MaxMessagesPerChat = 2
	e.cfg.WhatsApp.Backfill.MaxConversations = 1
	e.restart()
	h := newHistoryFixture(t, e)
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, h.convs...)))
	e.waitQueueEmpty()
	sent := e.mx.Sent()
	requireHistory(t, sentTo(sent, h.roomA), h.a3, h.a4)
	// C was active last: it gets the one portal the sync may open.
	_, roomC := e.conversationOf(h.chatC)
	requireHistory(t, sentTo(sent, roomC.Chat), h.c1)
	_, err := e.router.ConversationOf(e.ctx, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: h.chatB})
	require.ErrorIs(t, err, bridge.ErrUnknownLeg, "no second portal opened")

	e.cfg.WhatsApp.Backfill.Enabled = false
	e.restart()
	more := histMsg{id: "A5", body: "a5 with backfill off", at: time.Now().Add(-time.Minute)}
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_RECENT, historyConv(contactJID, "", more))))
	e.waitQueueEmpty()
	require.Empty(t, e.mx.Sent())
}

// TestRelayNeverBackfills: the relay account's history (every stranger's
// chat with the bridge's number) is not even downloaded, also for a chat
// that has a portal.
func TestRelayNeverBackfills(t *testing.T) {
	e := newEnv(t)
	f := e.login(RelayAccount, relayJID)
	chat := e.chatOf(RelayAccount, contactJID)
	_, err := e.router.CreateConversation(e.ctx, bridge.Leg{Network: netMatrix, Chat: "!relay-portal:example.org"}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat})
	require.NoError(t, err)
	require.True(t, f.dispatch(message(contactJID, contactJID, "R2", text("live to the relay"))))
	old := histMsg{id: "R1", body: "to the relay, earlier", at: time.Now().Add(-time.Hour)}
	require.True(t, f.dispatch(historyNotification(t, relayJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, historyConv(contactJID, "", old))))
	e.waitQueueEmpty()
	require.Equal(t, []string{"live to the relay"}, sentBodies(e.mx.Sent()), "only the live message")
	_, downloaded := historyDownloads.Load(f)
	require.False(t, downloaded, "the relay's history is not downloaded")

	answer := BackfillCommand(e.wa, e.router).Run(e.ctx, &commands.Request{
		User: bridge.Address{Network: bridge.NetworkMatrix, ID: admin}, Level: commands.LevelAdmin,
		Room: "!relay-portal:example.org", Name: "backfill", Args: []string{"10"}})
	require.Equal(t, backfillRelayAnswer, answer)
}

// TestBackfillCommandAsksThePhone: `backfill N` in a portal asks alice's
// phone for N messages before the oldest the bridge knows of, and the
// phone's answer (an on-demand history sync) lands in that portal only.
func TestBackfillCommandAsksThePhone(t *testing.T) {
	e := newEnv(t)
	h := newHistoryFixture(t, e)
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, h.convs...)))
	e.waitQueueEmpty()
	_, roomC := e.conversationOf(h.chatC)
	cmd := BackfillCommand(e.wa, e.router)
	req := func(user string, room bridge.ChatID, n string) *commands.Request {
		return &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: user}, Level: commands.LevelUser, Room: room, Name: "backfill", Args: []string{n}}
	}

	require.Equal(t, backfillNotOwnerAnswer, cmd.Run(e.ctx, req(bob, roomC.Chat, "5")))
	require.Equal(t, backfillNotPortal, cmd.Run(e.ctx, req(alice, "!nowhere:example.org", "5")))
	require.Error(t, cmd.Args(req(alice, roomC.Chat, "many")))

	sentBefore := len(h.f.sentMessages())
	answer := cmd.Run(e.ctx, req(alice, roomC.Chat, "5000"))
	require.Contains(t, answer, "Asked your phone for up to 50 (this bridge's limit) earlier messages")
	sent := h.f.waitSent(sentBefore + 1)
	ask := sent[len(sent)-1]
	require.Equal(t, aliceJID.ToNonAD(), ask.to, "the request goes to alice's own phone")
	od := ask.msg.GetProtocolMessage().GetPeerDataOperationRequestMessage().GetHistorySyncOnDemandRequest()
	require.NotNil(t, od)
	require.Equal(t, h.c1.id, od.GetOldestMsgID())
	require.Equal(t, h.c1.at.UnixMilli(), od.GetOldestMsgTimestampMS())
	require.Equal(t, otherJID.String(), od.GetChatJID())
	require.EqualValues(t, 50, od.GetOnDemandMsgCount())

	// The phone answers with what came before C1.
	c0 := histMsg{id: "C0", body: "c0 asked for", at: h.c1.at.Add(-24 * time.Hour)}
	cm1 := histMsg{id: "C-1", body: "c-1 asked for", at: h.c1.at.Add(-48 * time.Hour)}
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_ON_DEMAND, historyConv(otherJID, "", c0, cm1))))
	e.waitQueueEmpty()
	got := sentTo(e.mx.Sent(), roomC.Chat)
	requireHistory(t, got[1:], cm1, c0)
	require.Empty(t, e.sms.Sent())

	// The next request starts before them.
	cmd.Run(e.ctx, req(alice, roomC.Chat, "5"))
	sent = h.f.waitSent(sentBefore + 2)
	od = sent[len(sent)-1].msg.GetProtocolMessage().GetPeerDataOperationRequestMessage().GetHistorySyncOnDemandRequest()
	require.Equal(t, cm1.id, od.GetOldestMsgID())
	require.EqualValues(t, 5, od.GetOnDemandMsgCount())
	require.False(t, strings.Contains(e.logs.String(), c0.body))
}

// A one-to-one chat addressed by its LID is recorded under the number
// the sync gives for it, as live messages are.
func TestHistoryChatJIDPrefersNumber(t *testing.T) {
	lid := types.NewJID("123456789012345", types.HiddenUserServer)
	conv := historyConv(lid, "")
	conv.PnJID = stringPtr(contactJID.String())
	jid, ok := historyChatJID(conv)
	require.True(t, ok)
	require.Equal(t, contactJID, jid)
	_, ok = historyChatJID(historyConv(types.NewJID("status", types.BroadcastServer), ""))
	require.False(t, ok)
}

func stringPtr(s string) *string { return &s }

// No phone number reaches what Matrix would show from a history sync:
// push names that are numbers, "@number" mentions, a group whose subject
// is a number, a chat known by its LID; nor the database or the log.
func TestNoNumbersFromHistory(t *testing.T) {
	e := newEnv(t, withoutUnrouted)
	var mu sync.Mutex
	var rooms []Unrouted
	e.wa.SetHooks(Hooks{OnChatTimer: e.router.SetLegTimer, OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		mu.Lock()
		rooms = append(rooms, u)
		mu.Unlock()
		return e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!h-" + u.Chat + ":example.org"}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	f := e.login(alice, aliceJID)
	now := time.Now().Truncate(time.Second)
	one := historyConv(contactJID, "+1 415 555 0177", histMsg{id: "N1", body: "hi @14155550177", at: now.Add(-time.Hour)})
	one.Messages[0].Message.PushName = stringPtr("+14155550177")
	group := historyConv(groupJID, "442071838750", histMsg{id: "N2", sender: otherJID, body: "ping @442071838750", at: now.Add(-2 * time.Hour)})
	group.Messages[0].Message.PushName = stringPtr("442071838750")
	lid := types.NewJID("123456789012345", types.HiddenUserServer)
	byLID := historyConv(lid, "", histMsg{id: "N3", body: "by lid", at: now.Add(-3 * time.Hour)})
	byLID.PnJID = stringPtr(types.NewJID("14155550188", types.DefaultUserServer).String())
	require.True(t, f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, one, group, byLID)))
	e.waitQueueEmpty()
	sent := e.mx.WaitSent(3, 5*time.Second)
	require.Len(t, sent, 3)
	for _, s := range sent {
		snd := s.Delivery.Event.Sender
		requireNoNumbers(t, string(snd.ID)+" "+snd.DisplayName+" "+s.Delivery.Event.Content.Body, "history delivery")
		require.False(t, phone.Contains(snd.DisplayName), snd.DisplayName)
		require.NotContains(t, s.Delivery.Event.Content.Body, "4155550188")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, rooms, 3)
	for _, r := range rooms {
		requireNoNumbers(t, r.Name+r.Contact.DisplayName+string(r.Contact.ID)+string(r.Chat), "portal")
		require.False(t, phone.Contains(r.Name+" "+r.Contact.DisplayName), r.Name+" "+r.Contact.DisplayName)
	}
	requireStoredNoNumbers(t, e)
	requireNoNumbers(t, e.logs.String(), "the logs")
	require.NotContains(t, e.logs.String(), "4155550188")
}

// Messages sent while the bridge was down arrive on reconnect as live
// messages (whatsmeow's offline delivery): once each, in order, to every
// leg (the SMS contact too); WhatsApp redelivering one, or a later history
// sync holding them, adds nothing.
func TestOfflineMessagesArriveOnceInOrder(t *testing.T) {
	e := newEnv(t)
	h := newHistoryFixture(t, e)
	e.restart() // the bridge was down; the phone kept the messages
	now := time.Now().Truncate(time.Second)
	missed := []histMsg{
		{id: "O1", body: "missed one", at: now.Add(-3 * time.Minute)},
		{id: "O2", body: "missed two", at: now.Add(-2 * time.Minute)},
		{id: "O3", body: "missed three", at: now.Add(-time.Minute)},
	}
	for _, m := range append(missed, missed[1]) {
		evt := message(contactJID, contactJID, m.id, text(m.body))
		evt.Info.Timestamp = m.at
		require.True(t, h.f.dispatch(evt))
	}
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_RECENT, historyConv(contactJID, "", missed[2], missed[1], missed[0]))))
	e.waitQueueEmpty()
	want := []string{"missed one", "missed two", "missed three"}
	got := sentTo(e.mx.Sent(), h.roomA)
	require.Equal(t, want, sentBodies(got))
	for _, s := range got {
		require.False(t, s.Delivery.Event.History, "offline messages are live")
	}
	require.Equal(t, want, sentBodies(e.sms.Sent()))
}

// Where a chat's history begins is metadata: gone after
// retention.metadata, after which `backfill` waits for a next message.
func TestHistoryAnchorExpiresWithMetadata(t *testing.T) {
	e := newEnv(t, withMetadata(time.Hour))
	h := newHistoryFixture(t, e)
	require.True(t, h.f.dispatch(historyNotification(t, aliceJID, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, h.convs...)))
	e.waitQueueEmpty()
	_, roomC := e.conversationOf(h.chatC)
	req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser, Room: roomC.Chat, Name: "backfill", Args: []string{"5"}}
	cmd := BackfillCommand(e.wa, e.router)
	e.advance(30 * time.Minute)
	e.wa.Prune(e.ctx)
	require.Contains(t, cmd.Run(e.ctx, req), "Asked your phone")
	e.advance(time.Hour)
	e.wa.Prune(e.ctx)
	require.Equal(t, backfillNoAnchorAnswer, cmd.Run(e.ctx, req))
	var n int
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT count(*) FROM sb_whatsapp_backfill`).Scan(&n))
	require.Zero(t, n)
}
