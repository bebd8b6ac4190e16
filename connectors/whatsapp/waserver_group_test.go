package whatsapp

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// A WhatsApp group of the relay account and two contacts' real clients:
// messages cross both ways with sender keys (each member's sender key
// distributed over its 1:1 Signal sessions), also after a restart of the
// bridge (the relay's own and the contacts' sender keys in the sealed
// store); a contact leaving becomes a notice.
func TestServerGroup(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		relay := e.loginQR(RelayAccount, relayNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		dave := e.newContact(otherNumber, "Dave")
		info, err := carol.cli.CreateGroup(e.ctx, whatsmeow.ReqCreateGroup{Name: "Family", Participants: []types.JID{relay, dave.cli.Store.ID.ToNonAD()}})
		require.NoError(t, err)
		gid := info.JID
		require.Len(t, info.Participants, 3)

		_, err = carol.cli.SendMessage(e.ctx, gid, &waE2E.Message{Conversation: proto.String("hi group")})
		require.NoError(t, err)
		sent := e.waitSent(1)
		require.Equal(t, "hi group", sent[0].Delivery.Event.Content.Body)
		require.Equal(t, "Carol", sent[0].Delivery.Event.Sender.DisplayName)
		require.Equal(t, "skmsg", e.srv.LastEncType(e.wa.loginOf(RelayAccount).jid), "a sender key message")
		require.Equal(t, "hi group", dave.waitMessages(t, 1)[0].Message.GetConversation())
		mxLeg := e.matrixLeg(sent[0].Delivery.Event.Source.Chat)

		say := func(id, body string) {
			t.Helper()
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: bridge.RemoteID(id),
				Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, Content: &bridge.Content{Type: bridge.MsgText, Body: body}}))
		}
		textOf := func(m *waE2E.Message) string {
			if m.GetConversation() != "" {
				return m.GetConversation()
			}
			return m.GetExtendedTextMessage().GetText()
		}
		say("$g1", "hello both")
		for _, c := range []*contact{carol, dave} {
			got := c.waitMessages(t, map[*contact]int{carol: 1, dave: 2}[c])
			last := got[len(got)-1]
			require.Equal(t, gid, last.Info.Chat)
			require.Contains(t, textOf(last.Message), "hello both")
		}

		_, err = dave.cli.SendMessage(e.ctx, gid, &waE2E.Message{Conversation: proto.String("dave here")})
		require.NoError(t, err)
		sent = e.waitSent(2)
		require.Equal(t, "dave here", sent[1].Delivery.Event.Content.Body)
		require.Equal(t, "Dave", sent[1].Delivery.Event.Sender.DisplayName)
		require.Equal(t, "dave here", carol.waitMessages(t, 2)[1].Message.GetConversation(), "members read each other")

		// After a restart, both directions still work.
		e.restart()
		e.waitConnected(RelayAccount)
		_, err = carol.cli.SendMessage(e.ctx, gid, &waE2E.Message{Conversation: proto.String("after restart")})
		require.NoError(t, err)
		sent = e.mx.WaitSent(1, 20*time.Second)
		require.Len(t, sent, 1)
		require.Equal(t, "after restart", sent[0].Delivery.Event.Content.Body)
		say("$g2", "still here")
		got := carol.waitMessages(t, 3)
		require.Contains(t, textOf(got[2].Message), "still here")

		// Dave leaves: the conversation is told.
		require.NoError(t, dave.cli.LeaveGroup(e.ctx, gid))
		require.Eventually(t, func() bool {
			for _, s := range e.mx.Sent() {
				if s.Delivery.Event.Content != nil && strings.Contains(s.Delivery.Event.Content.Body, "left the WhatsApp group") {
					return true
				}
			}
			return false
		}, 20*time.Second, 20*time.Millisecond, "a notice that Dave left")
		e.requireNoNumbersAnywhere("whatsmeow_sender_keys", "whatsmeow_sessions")
	})
}
