package whatsapp

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

func readIfExists(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return raw, err
}

// `login whatsapp` by QR completes against the server, the phone (the
// server) having scanned the code the bot showed; the login is connected
// and pings the server; it survives the server dropping its socket
// (whatsmeow reconnects) and a restart of the bridge (the session is
// loaded back from the sealed store and logs in with its stored keys).
func TestServerQRLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		dev := e.loginQR(alice, aliceNumber)
		require.Equal(t, digitsOf(aliceNumber), dev.User)
		require.NotZero(t, dev.Device, "a linked device")
		require.Equal(t, []types.JID{dev}, e.srv.Devices(aliceNumber), "the phone lists the bridge as a linked device")
		require.Equal(t, "WhatsApp: logged in (connected)", e.wa.Whoami(e.ctx, alice)[0])
		pings := e.srv.Pings(dev)
		require.Eventually(t, func() bool { return e.srv.Pings(dev) > pings+1 }, 10*time.Second, 20*time.Millisecond, "keep-alive pings answered")

		// The server drops the socket: whatsmeow logs in again by itself.
		logins := e.srv.Logins(dev)
		require.Equal(t, 1, e.srv.DropConnections(aliceNumber))
		require.Eventually(t, func() bool { return e.srv.Logins(dev) > logins && e.srv.Online(dev) }, 20*time.Second, 20*time.Millisecond, "logged in again")
		e.waitConnected(alice)

		// A restart: nothing in memory survives, the session is loaded
		// back from the database and logs in.
		logins = e.srv.Logins(dev)
		e.restart()
		e.waitConnected(alice)
		require.Greater(t, e.srv.Logins(dev), logins)
		require.True(t, e.srv.Online(dev))
		require.Equal(t, "WhatsApp: logged in (connected)", e.wa.Whoami(e.ctx, alice)[0])
		e.requireNoNumbersAnywhere()
	})
}

// A text crosses both ways between the Matrix side and a contact's real
// WhatsApp client, through real Signal sessions (the bridge's in the
// sealed store); after a restart of the bridge it decrypts the contact's
// next message with the session it stored; the contact sees delivery
// receipts; no number is stored in clear.
func TestServerTextBothWays(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber)
		carol := e.newContact(contactNumber, "Carol")

		// WhatsApp -> Matrix: the contact writes first (a pre-key message).
		resp, err := carol.cli.SendMessage(e.ctx, own.ToNonAD(), &waE2E.Message{Conversation: proto.String("hello from whatsapp")})
		require.NoError(t, err)
		sent := e.waitSent(1)
		require.Equal(t, bridge.KindMessage, sent[0].Kind)
		require.Equal(t, "hello from whatsapp", sent[0].Delivery.Event.Content.Body)
		require.Equal(t, "Carol", sent[0].Delivery.Event.Sender.DisplayName)
		chat := e.wa.keys.chatID(alice, contactJID.String())
		require.Equal(t, bridge.ChatID(chat), sent[0].Delivery.Event.Source.Chat)
		mxLeg := e.matrixLeg(bridge.ChatID(chat))
		require.Eventually(t, func() bool {
			carol.mu.Lock()
			defer carol.mu.Unlock()
			for _, r := range carol.rcp {
				if r.MessageIDs[0] == resp.ID && r.Type == types.ReceiptTypeDelivered {
					return true
				}
			}
			return false
		}, 20*time.Second, 10*time.Millisecond, "the contact sees the message delivered")

		// Matrix -> WhatsApp.
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$m1",
			Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello from matrix"}}))
		got := carol.waitMessages(t, 1)
		require.Equal(t, "hello from matrix", got[0].Message.GetConversation())
		require.Equal(t, digitsOf(aliceNumber), got[0].Info.Sender.User)
		require.False(t, got[0].Info.IsFromMe)

		// A restart: the contact's next message is decrypted with the
		// Signal session loaded from the sealed store (a normal message,
		// not a pre-key one: the session must have been found).
		e.restart()
		e.waitConnected(alice)
		_, err = carol.cli.SendMessage(e.ctx, own.ToNonAD(), &waE2E.Message{Conversation: proto.String("still there?")})
		require.NoError(t, err)
		sent = e.mx.WaitSent(1, 20*time.Second)
		require.Len(t, sent, 1, "the new matrix leg received the message")
		require.Equal(t, "still there?", sent[0].Delivery.Event.Content.Body)
		require.Equal(t, "msg", e.srv.LastEncType(own), "decrypted with the stored session, not a new pre-key session")

		// And the bridge can still answer.
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$m2",
			Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, Content: &bridge.Content{Type: bridge.MsgText, Body: "yes"}}))
		got = carol.waitMessages(t, 2)
		require.Equal(t, "yes", got[1].Message.GetConversation())
		require.Equal(t, "msg", e.srv.LastEncType(*carol.cli.Store.ID), "encrypted with the stored session, not a new pre-key session")
		e.requireNoNumbersAnywhere("whatsmeow_sessions", "whatsmeow_identity_keys", "whatsmeow_lid_map", "sb_whatsapp_chat")
	})
}
