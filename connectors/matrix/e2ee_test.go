//go:build goolm

package matrix_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// TestEncryptedCommand: a command sent encrypted by matrix-js-sdk in a DM
// with the bot is decrypted and answered encrypted.
func TestEncryptedCommand(t *testing.T) {
	e := startWithDendrite(t)
	require.True(t, e.conn.EncryptionAvailable())
	sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	bot := e.conn.BotUserID().String()
	room := js.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bot}, IsDirect: true})
	js.WaitMember(t, room, bot, "join", 20*time.Second)

	sent := js.Send(t, room, "help")
	require.True(t, sent.Encrypted, "js sent the command encrypted")
	var answer jsclient.Message
	for i := 0; i < 3 && !strings.Contains(answer.Body, "whoami"); i++ {
		answer = js.WaitMessageFrom(t, room, bot, 30*time.Second)
		assert.True(t, answer.Decrypted, "the bot's %q was encrypted", answer.Body)
	}
	assert.Contains(t, answer.Body, "whoami")
	assert.Equal(t, "m.notice", answer.MsgType)
}

// TestEncryptedPortal: with encryption.default, portals are created
// encrypted; a message matrix-js-sdk sends there is decrypted by the bridge
// and delivered to the other leg, and the ghost's reply is decrypted by
// matrix-js-sdk. The homeserver holds only ciphertext.
func TestEncryptedPortal(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) { cfg.Encryption.Default = true })
	ctx := context.Background()
	sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	contact := bridge.Sender{ID: "erin", DisplayName: "Erin"}
	room := e.loopPortal(t, idOfString(sess.UserID), contact)
	encrypted, err := e.conn.IsEncrypted(ctx, bridge.ChatID(room))
	require.NoError(t, err)
	assert.True(t, encrypted)
	inv := js.WaitInvite(t, 20*time.Second)
	require.Equal(t, room, inv.RoomID)
	js.Join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()

	sent := js.Send(t, room, "secret canary 51c0")
	require.True(t, sent.Encrypted)
	got := e.lb.WaitSent(1, 30*time.Second)
	require.Len(t, got, 1)
	assert.Equal(t, "secret canary 51c0", got[0].Delivery.Event.Content.Body)
	assert.Equal(t, bridge.RemoteID(sent.EventID), got[0].Delivery.Event.SourceID)

	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-1", Sender: contact,
		Content: &bridge.Content{Type: bridge.MsgText, Body: "secret reply 9d2e"},
	}))
	back := js.WaitMessageFrom(t, room, ghost, 30*time.Second)
	assert.Equal(t, "secret reply 9d2e", back.Body)
	assert.True(t, back.Decrypted, "the ghost's message was encrypted")

	var raw struct {
		Type string `json:"type"`
	}
	e.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(back.EventID), sess.AccessToken, nil, &raw)
	assert.Equal(t, "m.room.encrypted", raw.Type)
	for _, canary := range []string{"secret canary 51c0", "secret reply 9d2e"} {
		assert.NotContains(t, e.hs.Log(), canary, "plaintext reached the homeserver log")
		assert.NotContains(t, e.logs.String(), canary, "plaintext reached the bridge log")
	}
}

// BenchmarkMatrixToLoopbackEncrypted is BenchmarkMatrixToLoopback in an
// encrypted portal, with matrix-js-sdk encrypting and the bridge
// decrypting.
func BenchmarkMatrixToLoopbackEncrypted(b *testing.B) {
	e := startWithDendrite(b, func(cfg *config.Config) { cfg.Encryption.Default = true })
	sess := e.hs.Register(b, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(b, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	room := e.loopPortal(b, idOfString(sess.UserID), bridge.Sender{ID: "bench", DisplayName: "Bench"})
	js.WaitInvite(b, 20*time.Second)
	js.Join(b, room)
	b.ResetTimer()
	var started []time.Time
	begin := time.Now()
	for i := 0; b.Loop(); i++ {
		started = append(started, time.Now())
		require.True(b, js.Send(b, room, "bench").Encrypted)
		e.lb.WaitSent(i+1, 30*time.Second)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	var at []time.Time
	for _, s := range e.lb.Sent() {
		at = append(at, s.At)
	}
	require.Len(b, at, len(started))
	reportLatencies(b, started, at, elapsed)
}

// TestMatrixTypingAndReceipts: typing and read receipts of a Matrix user,
// which the bridge learns from its bot's /sync, reach the loopback leg.
func TestMatrixTypingAndReceipts(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: "frank", DisplayName: "Frank"}
	room := e.loopPortal(t, idOf(alice), contact)
	alice.join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-1", Sender: contact,
		Content: &bridge.Content{Type: bridge.MsgText, Body: "read me"},
	}))
	msg := alice.waitEvent(t, room, "ghost message", func(evt roomEvent) bool { return evt.Sender == ghost && evt.Type == "m.room.message" })
	e.waitMapped(t, bridge.NetworkMatrix, bridge.RemoteID(msg.EventID))

	status := alice.do(t, http.MethodPut, "/rooms/"+url.PathEscape(room)+"/typing/"+url.PathEscape(alice.id), map[string]any{"typing": true, "timeout": 30000}, nil)
	require.Equal(t, http.StatusOK, status)
	waitFor(t, 15*time.Second, "typing on the loopback leg", func() bool {
		typing := e.lb.Typing()
		return len(typing) > 0 && typing[0]
	})
	status = alice.do(t, http.MethodPost, "/rooms/"+url.PathEscape(room)+"/receipt/m.read/"+url.PathEscape(msg.EventID), map[string]any{}, nil)
	require.Equal(t, http.StatusOK, status)
	sent := e.lb.WaitSent(1, 15*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.KindReadReceipt, sent[0].Kind)
	assert.Equal(t, bridge.RemoteID("lb-1"), sent[0].Delivery.Target)
}

// TestMatrixRedaction: a redaction on Matrix deletes the message on the
// other leg. Dendrite leaves redactions out of appservice transactions, so
// the bridge takes them from its bot's /sync.
func TestMatrixRedaction(t *testing.T) {
	e := startWithDendrite(t)
	alice := e.newUser(t, "alice")
	room := e.loopPortal(t, idOf(alice), bridge.Sender{ID: "gina", DisplayName: "Gina"})
	alice.join(t, room)
	msg := alice.sendText(t, room, "oops")
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.Len(t, sent, 1)
	e.waitMapped(t, netLoop, sent[0].RemoteID)
	status := alice.do(t, http.MethodPut, "/rooms/"+url.PathEscape(room)+"/redact/"+url.PathEscape(msg)+"/r1", map[string]any{}, nil)
	require.Equal(t, http.StatusOK, status)
	sent = e.lb.WaitSent(2, 15*time.Second)
	require.Len(t, sent, 2)
	assert.Equal(t, bridge.KindDelete, sent[1].Kind)
	assert.Equal(t, sent[0].RemoteID, sent[1].Delivery.Target)
}
