package whatsapp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// A disappearing timer set by the contact on WhatsApp becomes the
// conversation's retention; one set from the bridge (the retention
// command) reaches the contact's WhatsApp, and the bridge's next message
// carries it.
func TestServerDisappearingTimer(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		_, err := carol.cli.SendMessage(e.ctx, own, &waE2E.Message{Conversation: proto.String("hi")})
		require.NoError(t, err)
		sent := e.waitSent(1)
		chat := sent[0].Delivery.Event.Source.Chat
		conv, err := e.router.ConversationOf(e.ctx, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat})
		require.NoError(t, err)
		mxLeg := e.matrixLeg(chat)

		// WhatsApp -> bridge: the contact turns on a 7-day timer.
		require.NoError(t, carol.cli.SetDisappearingTimer(e.ctx, own, 7*24*time.Hour, time.Now()))
		require.Eventually(t, func() bool {
			got, err := e.router.ConversationRetention(e.ctx, conv)
			return err == nil && got.Keep == 7*24*time.Hour && got.Rule == bridge.RuleLegTimer
		}, 20*time.Second, 20*time.Millisecond, "the contact's timer is the conversation's retention")

		// Bridge -> WhatsApp: a 24-hour timer.
		require.NoError(t, e.wa.SetDisappearingTimer(e.ctx, chat, 24*time.Hour))
		got := carol.waitMessages(t, 1)
		setting := got[0].Message.GetProtocolMessage()
		require.Equal(t, waE2E.ProtocolMessage_EPHEMERAL_SETTING, setting.GetType())
		require.Equal(t, uint32(86400), setting.GetEphemeralExpiration())
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$x",
			Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "bye"}}))
		got = carol.waitMessages(t, 2)
		require.Equal(t, uint32(86400), got[1].Message.GetExtendedTextMessage().GetContextInfo().GetExpiration(), "the bridge's message disappears too")
	})
}

// A contact who reinstalls WhatsApp comes back as the same device with a
// new identity key. The bridge's next message, encrypted with the old
// session, cannot be read: the contact's app sends retry receipts, the
// bridge takes the new identity (through the sealed store's identity and
// session wrappers) and sends it again in a new session; the contact's
// replies are decrypted.
func TestServerContactReinstalls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		_, err := carol.cli.SendMessage(e.ctx, own, &waE2E.Message{Conversation: proto.String("before")})
		require.NoError(t, err)
		sent := e.waitSent(1)
		mxLeg := e.matrixLeg(sent[0].Delivery.Event.Source.Chat)
		say := func(id, body string) {
			t.Helper()
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: bridge.RemoteID(id),
				Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: body}}))
		}
		say("$1", "hello")
		require.Equal(t, "hello", carol.waitMessages(t, 1)[0].Message.GetConversation())

		// Reinstall: the old app is gone, the new one is the same device
		// with new keys.
		old := *carol.cli.Store.ID
		carol.cli.Disconnect()
		require.True(t, e.srv.RemoveDevice(old))
		e.srv.ReuseDeviceID(contactNumber, old.Device)
		carol = e.newContact(contactNumber, "Carol")
		require.Equal(t, old, *carol.cli.Store.ID, "the same device, new identity")

		say("$2", "are you there?")
		got := carol.waitMessages(t, 1)
		require.Equal(t, "are you there?", got[0].Message.GetConversation())
		require.Positive(t, e.srv.Retries(), "it took retry receipts")

		_, err = carol.cli.SendMessage(e.ctx, own, &waE2E.Message{Conversation: proto.String("new phone, who dis")})
		require.NoError(t, err)
		sent = e.waitSent(2)
		require.Equal(t, "new phone, who dis", sent[1].Delivery.Event.Content.Body)
		require.Equal(t, mxLeg, e.matrixLeg(sent[1].Delivery.Event.Source.Chat), "the same conversation")
		e.requireNoNumbersAnywhere("whatsmeow_sessions", "whatsmeow_identity_keys")
	})
}
