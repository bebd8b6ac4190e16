package whatsapp

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Two users without WhatsApp logins of their own start the same number
// through the relay: alice's conversation gets the relay's one-to-one
// chat, bob's (whose start finds that chat taken) a group the relay
// creates with the contact alone, named without a number. Each user's
// messages go to their own chat, prefixed with their name; the contact's
// replies in the group reach only bob, their one-to-one replies only
// alice; nothing stored holds the number.
func TestRelayGroupForSecondConversation(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			relay := e.login(RelayAccount, relayJID)
			relay.onWhatsApp[contactNumber] = contactJID

			// alice: the relay's one chat with the contact.
			convA := bridge.NewConversationID()
			direct, contact, err := e.wa.OpenPhoneChat(e.ctx, alice, contactNumber, convA)
			require.NoError(t, err)
			legA := bridge.Leg{Network: netMatrix, Chat: "!alice-portal:example.org"}
			require.NoError(t, e.router.CreateConversationWithID(e.ctx, convA, legA, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: direct}))

			// bob: OpenPhoneChat hands back the same chat, so the starter
			// asks for a group of its own.
			convB := bridge.NewConversationID()
			again, _, err := e.wa.OpenPhoneChat(e.ctx, bob, contactNumber, convB)
			require.NoError(t, err)
			require.Equal(t, direct, again, "one one-to-one chat per contact")
			group, groupContact, err := e.wa.OpenPhoneGroup(e.ctx, bob, contactNumber, convB, "Bob Builder (switchboard)")
			require.NoError(t, err)
			require.NotEqual(t, direct, group)
			require.Equal(t, contact, groupContact, "the same pseudonymous participant")
			require.Len(t, relay.created, 1)
			req := relay.created[0]
			require.Equal(t, "Bob Builder (switchboard)", req.Name)
			require.False(t, strings.ContainsFunc(req.Name, unicode.IsDigit), "group name %q", req.Name)
			require.Equal(t, []types.JID{contactJID}, req.Participants)
			require.Empty(t, relay.left)
			groupJID := types.NewJID("120363000000000101", types.GroupServer)
			require.Equal(t, e.chatOf(RelayAccount, groupJID), group)
			legB := bridge.Leg{Network: netMatrix, Chat: "!bob-portal:example.org"}
			require.NoError(t, e.router.CreateConversationWithID(e.ctx, convB, legB, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: group}))

			chats, err := e.wa.ChatsReaching(e.ctx, contactNumber)
			require.NoError(t, err)
			require.ElementsMatch(t, []bridge.ChatID{direct, group}, chats, "start finds both conversations' chats")
			encrypted, err := e.wa.IsEncrypted(e.ctx, group)
			require.NoError(t, err)
			require.True(t, encrypted)

			// Outgoing: each user's message in their own chat, with their name.
			for i, tc := range []struct {
				leg  bridge.Leg
				user string
				name string
				to   types.JID
			}{
				{legB, bob, "Bob", groupJID},
				{legA, alice, "Alice", contactJID},
			} {
				require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: tc.leg, SourceID: bridge.RemoteID("$out" + string(rune('0'+i))),
					Sender: bridge.Sender{ID: bridge.UserID(tc.user), DisplayName: tc.name}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello"}}))
				out := relay.waitSent(i + 1)
				require.Len(t, out, i+1)
				require.Equal(t, tc.to, out[i].to, "%s's message", tc.name)
				require.Equal(t, tc.name+": hello", out[i].msg.GetConversation())
			}

			// Incoming: the group reaches only bob, the one-to-one chat only alice.
			for i, tc := range []struct {
				chat types.JID
				want bridge.Leg
			}{
				{groupJID, legB},
				{contactJID, legA},
			} {
				require.True(t, relay.dispatch(message(tc.chat, contactJID, "IN"+string(rune('0'+i)), text("reply"))))
				sent := e.mx.WaitSent(i+1, 5*time.Second)
				require.Len(t, sent, i+1)
				require.Equal(t, tc.want.Chat, sent[i].Chat)
				require.Equal(t, contact.ID, sent[i].Delivery.Event.Sender.ID)
			}
			time.Sleep(100 * time.Millisecond)
			require.Len(t, e.mx.Sent(), 2, "each reply reached one conversation")

			// A third user gets a second group.
			third, _, err := e.wa.OpenPhoneGroup(e.ctx, "@carol:example.org", contactNumber, bridge.NewConversationID(), "Carol (switchboard)")
			require.NoError(t, err)
			require.NotContains(t, []bridge.ChatID{direct, group}, third)

			requireNoNumbers(t, e.logs.String(), "logs")
			requireStoredNoNumbers(t, e)
		})
	}
}

// When WhatsApp does not add the contact to the group (their privacy
// settings), the relay leaves it, records nothing and says why; a user
// with their own login gets no group. Either way bob's start ends there.
func TestRelayGroupRefused(t *testing.T) {
	e := newEnv(t)
	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	relay.onWhatsApp[otherNumber] = otherJID
	direct, _, err := e.wa.OpenPhoneChat(e.ctx, alice, contactNumber, "")
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		owner   string
		phone   string
		setup   func()
		want    error
		created int
		left    int
	}{
		{"number not on WhatsApp", bob, "+14155550199", func() {}, ErrNotOnWhatsApp, 0, 0},
		{"contact's privacy settings", bob, contactNumber, func() { relay.refuseAdd = map[string]int{contactJID.User: 403} }, ErrContactNotAdded, 1, 1},
		{"own login", alice, otherNumber, func() { e.login(alice, aliceJID).onWhatsApp[otherNumber] = otherJID }, ErrGroupNeedsRelay, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			chat, _, err := e.wa.OpenPhoneGroup(e.ctx, tc.owner, tc.phone, bridge.NewConversationID(), "Bob (switchboard)")
			require.ErrorIs(t, err, tc.want)
			require.Empty(t, chat)
			require.Len(t, relay.created, tc.created)
			require.Len(t, relay.left, tc.left)
			if tc.left > 0 {
				require.Equal(t, types.NewJID("120363000000000101", types.GroupServer), relay.left[0], "the new group is left")
			}
			requireNoNumbers(t, err.Error(), "error")
		})
	}
	chats, err := e.wa.ChatsReaching(e.ctx, contactNumber)
	require.NoError(t, err)
	require.Equal(t, []bridge.ChatID{direct}, chats, "no group recorded")
	var n int
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_chat WHERE is_group`).Scan(&n))
	require.Zero(t, n)
	requireNoNumbers(t, e.logs.String(), "logs")
}

// Group names fit WhatsApp's 25 characters and never carry a number.
func TestGroupSubject(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Bob (switchboard)", "Bob (switchboard)"},
		{"  Bob  ", "Bob"},
		{"Call +1 415 555 0177 now!", "Call [number] now!"},
		{"Bartholomew Fitzgerald-Smythe", "Bartholomew Fitzgerald-S…"},
		{"Ünïcødé Ñámé with many letters", "Ünïcødé Ñámé with many l…"},
	} {
		got := groupSubject(tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.LessOrEqual(t, len([]rune(got)), maxSubjectRunes)
	}
}

// While the contact is out of a relay group (it holds them alone), what
// the user sends there fails with the reason instead of reaching nobody;
// once they rejoin it goes through again. Other chats with the contact
// are not affected.
func TestRelayGroupContactLeft(t *testing.T) {
	e := newEnv(t)
	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	convA, convB := bridge.NewConversationID(), bridge.NewConversationID()
	direct, _, err := e.wa.OpenPhoneChat(e.ctx, alice, contactNumber, convA)
	require.NoError(t, err)
	group, _, err := e.wa.OpenPhoneGroup(e.ctx, bob, contactNumber, convB, "Bob (switchboard)")
	require.NoError(t, err)
	legA := bridge.Leg{Network: netMatrix, Chat: "!alice-portal:example.org"}
	legB := bridge.Leg{Network: netMatrix, Chat: "!bob-portal:example.org"}
	require.NoError(t, e.router.CreateConversationWithID(e.ctx, convA, legA, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: direct}))
	require.NoError(t, e.router.CreateConversationWithID(e.ctx, convB, legB, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: group}))
	gJID := types.NewJID("120363000000000101", types.GroupServer)
	require.Equal(t, e.chatOf(RelayAccount, gJID), group)

	send := func(leg bridge.Leg, id string) {
		t.Helper()
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: leg, SourceID: bridge.RemoteID(id),
			Sender: bridge.Sender{ID: bridge.UserID(bob), DisplayName: "Bob"}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hi"}}))
	}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	require.True(t, relay.dispatch(&events.GroupInfo{JID: gJID, Timestamp: t0, Sender: &contactJID, Leave: []types.JID{contactJID}}))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1, "bob is told the contact left")

	send(legB, "$while-out")
	rep, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
		return r.SourceID == "$while-out" && r.State == bridge.StateFailed
	})
	require.True(t, ok, "the message fails")
	require.ErrorIs(t, rep.Err, ErrContactLeftGroup)
	send(legA, "$direct")
	out := relay.waitSent(1)
	require.Len(t, out, 1)
	require.Equal(t, contactJID, out[0].to, "the one-to-one chat is not affected; nothing went to the group")

	require.True(t, relay.dispatch(&events.GroupInfo{JID: gJID, Timestamp: t0.Add(time.Minute), Sender: &contactJID, Join: []types.JID{contactJID}}))
	send(legB, "$after-rejoin")
	out = relay.waitSent(2)
	require.Len(t, out, 2)
	require.Equal(t, gJID, out[1].to, "after they rejoin, messages reach the group again")
}
