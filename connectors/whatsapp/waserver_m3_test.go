package whatsapp

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

var pairingCode = regexp.MustCompile(`[A-Z0-9]{4}-[A-Z0-9]{4}`)

// `login whatsapp +N` answers a pairing code; the user types it on their
// phone (the server), which completes the login; the session then
// survives a restart.
func TestServerPairingCodeLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		e.srv.AddAccount(aliceNumber, "Alice")
		rec := &stepRecorder{}
		req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser, Room: "!dm:example.org",
			Name: "login", Args: []string{"whatsapp", aliceNumber}, Reply: rec.reply}
		answer := e.wa.LoginCommand(e.ctx, req)
		code := pairingCode.FindString(answer)
		require.NotEmpty(t, code, "a pairing code in %q", answer)
		require.Error(t, e.srv.EnterCode(otherNumber, code), "no code waits for another number")
		require.NoError(t, e.srv.EnterCode(aliceNumber, code))
		require.Contains(t, rec.wait(t, commands.StepDone).Text, "now logged in to WhatsApp")
		e.waitConnected(alice)
		devs := e.srv.Devices(aliceNumber)
		require.Len(t, devs, 1)
		require.Equal(t, devs[0], e.wa.loginOf(alice).jid)

		e.restart()
		e.waitConnected(alice)
		require.True(t, e.srv.Online(devs[0]))
		e.requireNoNumbersAnywhere()
	})
}

// A wrong pairing code typed on the phone does not link anything: the
// key bundle the companion sends back does not open.
func TestServerPairingCodeWrong(t *testing.T) {
	e := newSrvEnv(t, dbtest.SQLite(t))
	e.srv.AddAccount(aliceNumber, "Alice")
	rec := &stepRecorder{}
	req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser, Room: "!dm:example.org",
		Name: "login", Args: []string{"whatsapp", aliceNumber}, Reply: rec.reply}
	code := pairingCode.FindString(e.wa.LoginCommand(e.ctx, req))
	require.NotEmpty(t, code)
	wrong := []byte(code)
	wrong[0] = map[bool]byte{true: 'B', false: 'A'}[wrong[0] == 'A']
	require.NoError(t, e.srv.EnterCode(aliceNumber, string(wrong)))
	require.Eventually(t, func() bool { return e.srv.RefusedPairings() == 1 }, 20*time.Second, 10*time.Millisecond, "the phone refused the key bundle")
	require.Empty(t, e.srv.Devices(aliceNumber))
	require.Equal(t, "WhatsApp: login in progress", e.wa.Whoami(e.ctx, alice)[0])
}

// protocolOf is the protocol message of a received message, also when
// whatsmeow leaves it inside an edit wrapper.
func protocolOf(m *events.Message) *waE2E.ProtocolMessage {
	if p := m.Message.GetProtocolMessage(); p != nil {
		return p
	}
	return m.Message.GetEditedMessage().GetMessage().GetProtocolMessage()
}

// Reply, edit, reaction, revoke, read receipts and typing cross both ways
// between the Matrix side and the contact's real WhatsApp client.
func TestServerMessageActions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		carolJID := carol.cli.Store.ID.ToNonAD()

		// WhatsApp -> Matrix: a message, its edit, a reaction to it, its
		// revocation.
		first, err := carol.cli.SendMessage(e.ctx, own, &waE2E.Message{Conversation: proto.String("first")})
		require.NoError(t, err)
		sent := e.waitSent(1)
		mxMsg := sent[0].RemoteID
		mxLeg := e.matrixLeg(sent[0].Delivery.Event.Source.Chat)
		_, err = carol.cli.SendMessage(e.ctx, own, carol.cli.BuildEdit(own, first.ID, &waE2E.Message{Conversation: proto.String("first, edited")}))
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, own, carol.cli.BuildReaction(own, carolJID, first.ID, "👍"))
		require.NoError(t, err)
		second, err := carol.cli.SendMessage(e.ctx, own, &waE2E.Message{Conversation: proto.String("second")})
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, own, carol.cli.BuildRevoke(own, carolJID, second.ID))
		require.NoError(t, err)
		sent = e.waitSent(5)
		require.Equal(t, bridge.KindEdit, sent[1].Kind)
		require.Equal(t, "first, edited", sent[1].Delivery.Event.Content.Body)
		require.Equal(t, mxMsg, sent[1].Delivery.Target)
		require.Equal(t, bridge.KindReaction, sent[2].Kind)
		require.Equal(t, "👍", sent[2].Delivery.Event.Reaction)
		require.Equal(t, mxMsg, sent[2].Delivery.Target)
		require.Equal(t, bridge.KindMessage, sent[3].Kind)
		require.Equal(t, bridge.KindDelete, sent[4].Kind)
		require.Equal(t, sent[3].RemoteID, sent[4].Delivery.Target)

		// Matrix -> WhatsApp: a message, a reply to the contact's, an edit,
		// a reaction and a delete.
		recv := func(evt *bridge.Event) {
			t.Helper()
			evt.Source = mxLeg
			evt.Sender = bridge.Sender{ID: alice, DisplayName: "Alice"}
			require.NoError(t, e.mx.Receive(e.ctx, evt))
		}
		recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$m1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi"}})
		got := carol.waitMessages(t, 1)
		ownID := got[0].Info.ID
		recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$m2", ReplyTo: mxMsg, Content: &bridge.Content{Type: bridge.MsgText, Body: "a reply"}})
		recv(&bridge.Event{Kind: bridge.KindEdit, SourceID: "$m3", Target: "$m1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi!"}})
		recv(&bridge.Event{Kind: bridge.KindReaction, SourceID: "$m4", Target: mxMsg, Reaction: "❤️"})
		recv(&bridge.Event{Kind: bridge.KindDelete, SourceID: "$m5", Target: "$m1"})
		got = carol.waitMessages(t, 5)
		reply := got[1].Message.GetExtendedTextMessage()
		require.Equal(t, "a reply", reply.GetText())
		require.Equal(t, first.ID, reply.GetContextInfo().GetStanzaID(), "quotes the contact's message")
		require.True(t, got[2].IsEdit)
		edit := protocolOf(got[2])
		require.Equal(t, waE2E.ProtocolMessage_MESSAGE_EDIT, edit.GetType())
		require.Equal(t, ownID, edit.GetKey().GetID())
		require.Equal(t, "hi!", edit.GetEditedMessage().GetConversation())
		require.Equal(t, first.ID, got[3].Message.GetReactionMessage().GetKey().GetID())
		require.Equal(t, "❤️", got[3].Message.GetReactionMessage().GetText())
		revoke := protocolOf(got[4])
		require.Equal(t, waE2E.ProtocolMessage_REVOKE, revoke.GetType())
		require.Equal(t, ownID, revoke.GetKey().GetID())

		// Read receipts both ways.
		require.NoError(t, carol.cli.MarkRead(e.ctx, []types.MessageID{ownID}, time.Now(), own, own))
		sent = e.waitSent(6)
		require.Equal(t, bridge.KindReadReceipt, sent[5].Kind)
		require.Equal(t, bridge.RemoteID("$m1"), sent[5].Delivery.Target)
		recv(&bridge.Event{Kind: bridge.KindReadReceipt, SourceID: "$r1", Target: mxMsg})
		require.Eventually(t, func() bool {
			carol.mu.Lock()
			defer carol.mu.Unlock()
			for _, r := range carol.rcp {
				if r.Type == types.ReceiptTypeRead && r.MessageIDs[0] == first.ID {
					return true
				}
			}
			return false
		}, 20*time.Second, 10*time.Millisecond, "the contact sees their message read")

		// Typing both ways.
		require.NoError(t, carol.cli.SendChatPresence(e.ctx, own, types.ChatPresenceComposing, types.ChatPresenceMediaText))
		require.Eventually(t, func() bool { return len(e.mx.Typing()) > 0 && e.mx.Typing()[0] }, 20*time.Second, 10*time.Millisecond)
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindTyping, Source: mxLeg, Sender: bridge.Sender{ID: alice}, Typing: true}))
		require.Eventually(t, func() bool {
			carol.mu.Lock()
			defer carol.mu.Unlock()
			return len(carol.cs) > 0 && carol.cs[0].State == types.ChatPresenceComposing
		}, 20*time.Second, 10*time.Millisecond, "the contact sees Alice typing")
		e.requireNoNumbersAnywhere("whatsmeow_sessions", "sb_whatsapp_chat")
	})
}

// whatsmeowRows counts the rows whatsmeow keeps for devices (every table
// with an our_jid column, and the device table).
func (e *srvEnv) whatsmeowRows() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, table := range []string{"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_identity_keys", "whatsmeow_pre_keys",
		"whatsmeow_sender_keys", "whatsmeow_privacy_tokens", "sb_whatsapp_login", "sb_whatsapp_chat"} {
		var n int
		require.NoError(e.t, e.db.QueryRow(e.ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

// `logout whatsapp` removes the linked device on the server (the phone no
// longer lists it, its keys no longer log in) and every session row in
// the bridge's database; a device removed from the phone is logged out
// the same way.
func TestServerLogout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		dev := e.loginQR(alice, aliceNumber)
		carol := e.newContact(contactNumber, "Carol")
		_, err := carol.cli.SendMessage(e.ctx, dev.ToNonAD(), &waE2E.Message{Conversation: proto.String("hello")})
		require.NoError(t, err)
		e.waitSent(1)
		// whatsmeow sends its delivery receipt in the background; a logout
		// racing that send trips the race detector inside whatsmeow
		// (FrameSocket.SendFrame reads the connection Close clears).
		require.Eventually(t, func() bool {
			carol.mu.Lock()
			defer carol.mu.Unlock()
			return len(carol.rcp) > 0
		}, 20*time.Second, 10*time.Millisecond, "carol got the delivery receipt")
		before := e.whatsmeowRows()
		for _, table := range []string{"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_identity_keys", "whatsmeow_pre_keys", "sb_whatsapp_login", "sb_whatsapp_chat"} {
			require.Positive(t, before[table], "%s has rows before the logout", table)
		}

		answer := e.wa.LogoutCommand(e.ctx, &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser,
			Name: "logout", Args: []string{"whatsapp"}})
		require.Equal(t, "Logged out of WhatsApp; the session was deleted from the bridge.", answer, "WhatsApp was told")
		require.Empty(t, e.srv.Devices(aliceNumber), "the phone no longer lists the bridge")
		require.Empty(t, e.whatsmeowRows(), "no session row is left")
		require.Equal(t, "WhatsApp: not logged in (send `login whatsapp`)", e.wa.Whoami(e.ctx, alice)[0])

		// Logged in again, then removed from the phone.
		dev = e.loginQR(alice, aliceNumber)
		require.True(t, e.srv.RemoveDevice(dev))
		_, ok := e.matrix.waitNotice("logged this bridge out")
		require.True(t, ok)
		require.Eventually(t, func() bool { return len(e.whatsmeowRows()) == 0 }, 20*time.Second, 20*time.Millisecond, "no session row is left")
	})
}
