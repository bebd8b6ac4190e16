package whatsapp

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// No phone number reaches what Matrix would show (ghost user IDs, display
// names, room names), the database in clear, or the log, whatever the
// WhatsApp side sends: numbers as push names, mentions, receipts, typing,
// group chats, logins and logouts.
func TestNoNumbersOnMatrixOrInLogs(t *testing.T) {
	e := newEnv(t, withoutUnrouted)
	var mu sync.Mutex
	var rooms []Unrouted
	e.wa.SetHooks(Hooks{OnChatTimer: e.router.SetLegTimer, OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		mu.Lock()
		rooms = append(rooms, u)
		mu.Unlock()
		return e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!r-" + u.Chat + ":example.org"}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	f := e.login(alice, aliceJID)
	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[otherNumber] = otherJID
	_, _, err := e.wa.OpenPhoneChat(e.ctx, bob, otherNumber, "")
	require.NoError(t, err)

	for i, tc := range []struct {
		chat, sender types.JID
		pushName     string
	}{
		{contactJID, contactJID, "+14155550177"},
		{contactJID, contactJID, "Carol 415 555 0177"},
		{groupJID, otherJID, "442071838750"},
		{groupJID, contactJID, ""},
	} {
		m := message(tc.chat, tc.sender, "P"+string(rune('0'+i)), text("hi @14155550177"))
		m.Info.PushName = tc.pushName
		require.True(t, f.dispatch(m))
	}
	f.dispatch(&events.Receipt{MessageSource: types.MessageSource{Chat: contactJID, Sender: contactJID}, MessageIDs: []types.MessageID{"P0"}, Type: types.ReceiptTypeRead})
	f.dispatch(&events.ChatPresence{MessageSource: types.MessageSource{Chat: contactJID, Sender: contactJID}, State: types.ChatPresenceComposing})
	f.dispatch(&events.LoggedOut{Reason: events.ConnectFailureLoggedOut})
	_, ok := e.matrix.waitNotice("logged this bridge out")
	require.True(t, ok)
	sent := e.mx.WaitSent(5, 5*time.Second)
	require.Len(t, sent, 5, "four messages and a read receipt")

	ghostKey := []byte("any key: ghosts are keyed hashes of the sender ID")
	for _, s := range sent {
		snd := s.Delivery.Event.Sender
		requireNoNumbers(t, string(snd.ID), "sender ID")
		requireNoNumbers(t, matrix.GhostOpaque(ghostKey, bridge.NetworkWhatsApp, snd.ID), "ghost")
		requireNoNumbers(t, snd.DisplayName, "ghost display name")
		require.False(t, phone.Contains(snd.DisplayName), snd.DisplayName)
		if s.Delivery.Event.Content != nil {
			requireNoNumbers(t, s.Delivery.Event.Content.Body, "mention")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, rooms, 2)
	for _, r := range rooms {
		requireNoNumbers(t, r.Name+r.Contact.DisplayName+string(r.Contact.ID)+string(r.Chat), "portal")
		require.False(t, phone.Contains(r.Name+" "+r.Contact.DisplayName))
	}
	e.matrix.mu.Lock()
	notices := slices.Clone(e.matrix.notices)
	e.matrix.mu.Unlock()
	for _, n := range notices {
		requireNoNumbers(t, n.text, "notice")
	}
	for _, line := range e.wa.Whoami(e.ctx, alice) {
		requireNoNumbers(t, line, "whoami")
	}
	requireNoNumbers(t, e.wa.Health(e.ctx).Message, "health")
	requireNoNumbers(t, e.logs.String(), "logs")

	// At rest: the connector's tables hold no number in clear.
	requireStoredNoNumbers(t, e)
}

// whatsmeow's errors can name JIDs; what the router logs and reports to
// the sender of a failed delivery names none.
func TestDeliveryErrorsAreScrubbed(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
	_, mxLeg := e.conversationOf(e.chatOf(alice, contactJID))
	f.mu.Lock()
	f.sendErr = fmt.Errorf("failed to encrypt for %s: %w", contactJID.String()+".0:1", whatsmeow.ErrIQForbidden)
	f.mu.Unlock()
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$x",
		Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello"}}))
	rep, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
	require.True(t, ok)
	require.ErrorIs(t, rep.Err, whatsmeow.ErrIQForbidden, "still classified")
	require.ErrorIs(t, rep.Err, bridge.ErrPermanent)
	requireNoNumbers(t, rep.Err.Error(), "status report")
	require.Contains(t, rep.Err.Error(), "[redacted]")
	requireNoNumbers(t, e.logs.String(), "logs")
}
