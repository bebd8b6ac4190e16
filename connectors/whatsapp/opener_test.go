package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Reaches asks IsOnWhatsApp through the user's own login or the relay,
// and caches the answer under a keyed hash for at most retention.metadata.
func TestReaches(t *testing.T) {
	e := newEnv(t, withMetadata(time.Hour))
	ok, err := e.wa.Reaches(e.ctx, bob, contactNumber)
	require.NoError(t, err)
	require.False(t, ok, "no login: not reachable")

	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	for _, tc := range []struct {
		owner, phone string
		want         bool
		calls        int
	}{
		{bob, contactNumber, true, 1},
		{bob, contactNumber, true, 1}, // cached
		{alice, contactNumber, true, 1},
		{bob, otherNumber, false, 2},
		{bob, otherNumber, false, 2},
	} {
		ok, err := e.wa.Reaches(e.ctx, tc.owner, tc.phone)
		require.NoError(t, err)
		require.Equal(t, tc.want, ok)
		require.Equal(t, tc.calls, relay.isOnCalls)
	}
	_, err = e.wa.Reaches(e.ctx, bob, "12345")
	require.ErrorIs(t, err, ErrInvalidNumber)

	// The cache holds no number, and expires with retention.metadata.
	rows, err := e.db.Query(e.ctx, `SELECT number_hash FROM sb_whatsapp_reach`)
	require.NoError(t, err)
	for rows.Next() {
		var h string
		require.NoError(t, rows.Scan(&h))
		requireNoNumbers(t, h, "cache key")
	}
	rows.Close()
	e.advance(time.Hour + time.Minute)
	_, err = e.wa.Reaches(e.ctx, bob, contactNumber)
	require.NoError(t, err)
	require.Equal(t, 3, relay.isOnCalls, "asked again after retention.metadata")
	e.wa.Prune(e.ctx)
	var n int
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_reach`).Scan(&n))
	require.Equal(t, 1, n, "the stale answer is pruned")

	// A user with their own login asks through it, or through the relay
	// while it is disconnected.
	own := e.login(alice, aliceJID)
	_, err = e.wa.Reaches(e.ctx, alice, otherNumber)
	require.NoError(t, err)
	require.Equal(t, 1, own.isOnCalls)
	own.Disconnect()
	e.advance(2 * time.Hour)
	_, err = e.wa.Reaches(e.ctx, alice, otherNumber)
	require.NoError(t, err)
	require.Equal(t, 1, own.isOnCalls)
	require.Equal(t, 4, relay.isOnCalls)
}

// start +N through the relay: one one-to-one WhatsApp chat per contact
// (further conversations get groups: relaygroup_test.go), the contact
// under its pseudonym, each message prefixed with the sender's name (never
// a number); the same chat is listed for the number afterwards.
func TestRelayChat(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.wa.OpenPhoneChat(e.ctx, bob, contactNumber, "")
	require.ErrorIs(t, err, ErrNotLoggedIn)
	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	_, _, err = e.wa.OpenPhoneChat(e.ctx, bob, otherNumber, "")
	require.ErrorIs(t, err, ErrNotOnWhatsApp)

	chat, contact, err := e.wa.OpenPhoneChat(e.ctx, bob, contactNumber, "")
	require.NoError(t, err)
	require.Equal(t, e.pseudo.Phone(contactNumber), contact)
	requireNoNumbers(t, string(chat)+contact.DisplayName+string(contact.ID), "chat and contact")
	chats, err := e.wa.ChatsReaching(e.ctx, contactNumber)
	require.NoError(t, err)
	require.Equal(t, []bridge.ChatID{chat}, chats)
	encrypted, err := e.wa.IsEncrypted(e.ctx, chat)
	require.NoError(t, err)
	require.True(t, encrypted)

	mxLeg := bridge.Leg{Network: netMatrix, Chat: "!bob-portal:example.org"}
	_, err = e.router.CreateConversation(e.ctx, mxLeg, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat})
	require.NoError(t, err)
	for i, name := range []string{"Bob", "Call +1 415 555 0177", ""} {
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: bridge.RemoteID("$b" + string(rune('0'+i))),
			Sender: bridge.Sender{ID: bob, DisplayName: name}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello"}}))
	}
	out := relay.waitSent(3)
	require.Equal(t, "Bob: hello", out[0].msg.GetConversation())
	require.NotContains(t, out[1].msg.GetConversation(), "555 0177")
	require.True(t, strings.HasSuffix(out[1].msg.GetConversation(), ": hello"))
	require.Equal(t, "Someone: hello", out[2].msg.GetConversation())

	// The contact's reply comes back on the same chat.
	require.True(t, relay.dispatch(message(contactJID, contactJID, "R1", text("hi bob"))))
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Equal(t, mxLeg.Chat, sent[0].Chat)
}

// Group chats: each member is their own pseudonymous participant;
// mentions of numbers become names; replies quote the right member.
func TestGroupChat(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	mention := &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{
		Text:        proto.String("hey @442071838750 and @14155550177"),
		ContextInfo: &waE2E.ContextInfo{MentionedJID: []string{otherJID.String(), contactJID.String()}},
	}}
	first := message(groupJID, contactJID, "G1", mention)
	first.Info.PushName = "+1 (415) 555-0177" // a push name that is a number
	require.True(t, f.dispatch(first))
	second := message(groupJID, otherJID, "G2", text("hello all"))
	second.Info.PushName = "Dave"
	require.True(t, f.dispatch(second))
	sent := e.mx.WaitSent(2, 5*time.Second)
	require.Len(t, sent, 2)
	require.Equal(t, sent[0].Chat, sent[1].Chat, "one conversation for the group")
	a, b := sent[0].Delivery.Event, sent[1].Delivery.Event
	require.NotEqual(t, a.Sender.ID, b.Sender.ID)
	require.Equal(t, e.pseudo.Phone(contactNumber), a.Sender, "a number as push name falls back to the pseudonym")
	require.Equal(t, "Dave", b.Sender.DisplayName)
	require.Equal(t, "hey @"+e.pseudo.Phone(otherNumber).DisplayName+" and @"+e.pseudo.Phone(contactNumber).DisplayName, a.Content.Body)
	for _, s := range sent {
		requireNoNumbers(t, s.Delivery.Event.Content.Body+s.Delivery.Event.Content.HTML+string(s.Delivery.Event.Sender.ID)+s.Delivery.Event.Sender.DisplayName, "delivered event")
	}

	_, mxLeg := e.conversationOf(e.chatOf(alice, groupJID))
	// The loopback records a send before the router notes its remote ID:
	// the reply refers to it once the router has finished both.
	require.Eventually(t, func() bool {
		n, err := e.router.QueueDepth(e.ctx)
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$r",
		ReplyTo: sent[1].RemoteID, Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hi Dave"}}))
	out := f.waitSent(1)
	require.Equal(t, groupJID, out[0].to)
	ci := out[0].msg.GetExtendedTextMessage().GetContextInfo()
	require.Equal(t, "G2", ci.GetStanzaID())
	require.Equal(t, otherJID.String(), ci.GetParticipant())
	requireNoNumbers(t, e.logs.String(), "logs")
}

// Messages in a chat no conversation holds are handed to OnUnrouted; the
// relay's unknown contacts and messages without a hook are dropped.
func TestUnroutedChats(t *testing.T) {
	e := newEnv(t, withoutUnrouted)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "U1", text("anyone?"))))
	require.Empty(t, e.mx.WaitSent(1, 100*time.Millisecond))

	var got []Unrouted
	e.wa.SetHooks(Hooks{OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		got = append(got, u)
		return e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!new-" + u.Chat + ":example.org"}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	require.True(t, f.dispatch(message(contactJID, contactJID, "U2", text("hello?"))))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	require.Len(t, got, 1)
	require.Equal(t, alice, got[0].Account)
	require.False(t, got[0].Group)
	require.Equal(t, "Carol", got[0].Contact.DisplayName)

	// A group gets its subject as name.
	require.True(t, f.dispatch(message(groupJID, contactJID, "U4", text("group hello"))))
	require.Len(t, e.mx.WaitSent(2, 5*time.Second), 2)
	require.Len(t, got, 2)
	require.True(t, got[1].Group)
	require.Equal(t, "Lunch crew", got[1].Name)

	// View-once media is not forwarded.
	viewOnce := message(contactJID, contactJID, "U5", &waE2E.Message{ViewOnceMessageV2: &waE2E.FutureProofMessage{Message: &waE2E.Message{
		ImageMessage: &waE2E.ImageMessage{Mimetype: proto.String("image/jpeg"), DirectPath: proto.String("/secret"), MediaKey: []byte("k")}}}})
	require.True(t, viewOnce.IsViewOnce)
	require.True(t, f.dispatch(viewOnce))
	sentNow := e.mx.WaitSent(3, 5*time.Second)
	require.Equal(t, bridge.MsgNotice, sentNow[2].Delivery.Event.Content.Type)
	require.Nil(t, sentNow[2].Delivery.Event.Content.Media)

	// Own messages sent from the phone are bridged as the user's.
	own := message(contactJID, aliceJID.ToNonAD(), "U3", text("from my phone"))
	own.Info.IsFromMe = true
	require.True(t, f.dispatch(own))
	sent := e.mx.WaitSent(4, 5*time.Second)
	require.Equal(t, "You (from WhatsApp)", sent[3].Delivery.Event.Sender.DisplayName)
	requireNoNumbers(t, string(sent[3].Delivery.Event.Sender.ID), "own sender")
	_ = types.EmptyJID
}

// A message nobody on the bridge can receive (a stranger writing to the
// relay account: OnUnrouted says ErrNoRecipient) is not kept, and the
// contact gets an automatic reply, at most once an hour, in one-to-one
// chats only. Any other failure to open a conversation leaves the message
// unacknowledged, so WhatsApp delivers it again and nothing is lost.
func TestUnroutedRelayAndRetry(t *testing.T) {
	e := newEnv(t, withoutUnrouted)
	relay := e.login(RelayAccount, relayJID)
	var hookErr error
	e.wa.SetHooks(Hooks{OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		if hookErr != nil {
			return "", hookErr
		}
		return e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!new-" + u.Chat + ":example.org"}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	hookErr = fmt.Errorf("%w: relay", ErrNoRecipient)
	replies := func() int {
		n := 0
		for _, m := range relay.sentMessages() {
			if m.msg.GetConversation() == undeliverableText {
				require.Equal(t, contactJID, m.to)
				n++
			}
		}
		return n
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		chat    types.JID
		replies int
	}{
		{"first message", 0, contactJID, 1},
		{"again within the hour", 30 * time.Minute, contactJID, 1},
		{"in a group", 0, groupJID, 1},
		{"an hour later", 31 * time.Minute, contactJID, 2},
	} {
		e.advance(step.advance)
		require.True(t, relay.dispatch(message(step.chat, contactJID, "S-"+step.name, text("hello?"))), step.name)
		require.Eventually(t, func() bool { return replies() == step.replies }, 5*time.Second, 10*time.Millisecond, step.name)
	}
	require.Empty(t, e.mx.Sent())
	require.Equal(t, 4.0, value(t, e.wa.metrics.messages.WithLabelValues("in", "undeliverable")))

	// A failure that may pass: not acknowledged, then delivered once.
	hookErr = errors.New("homeserver unreachable")
	msg := message(otherJID, otherJID, "RETRY1", text("still there?"))
	require.False(t, relay.dispatch(msg), "not acknowledged: WhatsApp delivers it again")
	hookErr = nil
	require.True(t, relay.dispatch(msg))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	require.Equal(t, 2, replies(), "no automatic reply for a failure that may pass")
	requireNoNumbers(t, e.logs.String(), "logs")
}
