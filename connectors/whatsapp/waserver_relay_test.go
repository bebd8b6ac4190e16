package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// Two users without logins of their own reach the same contact through
// the relay account: alice's conversation gets the relay's one-to-one
// chat, bob's a group the relay creates on the server with the contact.
// The contact's real client receives each user's messages in the right
// chat, prefixed with their name, and its replies reach only the
// conversation of the chat they were written in.
func TestServerRelayGroup(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		e.loginQR(RelayAccount, relayNumber)
		carol := e.newContact(contactNumber, "Carol")

		convA := bridge.NewConversationID()
		direct, _, err := e.wa.OpenPhoneChat(e.ctx, alice, contactNumber, convA)
		require.NoError(t, err)
		legA := bridge.Leg{Network: netMatrix, Chat: "!alice-portal:example.org"}
		require.NoError(t, e.router.CreateConversationWithID(e.ctx, convA, legA, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: direct}))
		convB := bridge.NewConversationID()
		group, _, err := e.wa.OpenPhoneGroup(e.ctx, bob, contactNumber, convB, "Bob Builder (switchboard)")
		require.NoError(t, err, "the server created the group with the contact")
		require.NotEqual(t, direct, group)
		legB := bridge.Leg{Network: netMatrix, Chat: "!bob-portal:example.org"}
		require.NoError(t, e.router.CreateConversationWithID(e.ctx, convB, legB, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: group}))

		for i, out := range []struct {
			leg  bridge.Leg
			user string
			name string
		}{{legB, bob, "Bob"}, {legA, alice, "Alice"}} {
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: out.leg, SourceID: bridge.RemoteID("$out" + string(rune('0'+i))),
				Sender: bridge.Sender{ID: bridge.UserID(out.user), DisplayName: out.name}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello"}}))
		}
		// The two conversations are delivered independently: in any order.
		byServer := map[string]*events.Message{}
		for _, m := range carol.waitMessages(t, 2) {
			byServer[m.Info.Chat.Server] = m
		}
		inGroup, direct1 := byServer[types.GroupServer], byServer[types.DefaultUserServer]
		require.NotNil(t, inGroup, "Bob's message in the group")
		require.Equal(t, "Bob: hello", inGroup.Message.GetConversation())
		require.NotNil(t, direct1, "Alice's in the one-to-one chat")
		require.Equal(t, "Alice: hello", direct1.Message.GetConversation())

		// Replies go back to the conversation of their chat.
		_, err = carol.cli.SendMessage(e.ctx, inGroup.Info.Chat, &waE2E.Message{Conversation: proto.String("to bob")})
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, direct1.Info.Chat, &waE2E.Message{Conversation: proto.String("to alice")})
		require.NoError(t, err)
		sent := e.waitSent(2)
		byBody := map[string]bridge.ChatID{}
		for _, s := range sent {
			byBody[s.Delivery.Event.Content.Body] = s.Chat
		}
		require.Equal(t, legB.Chat, byBody["to bob"])
		require.Equal(t, legA.Chat, byBody["to alice"])
		e.requireNoNumbersAnywhere("whatsmeow_sender_keys", "sb_whatsapp_chat")
	})
}
