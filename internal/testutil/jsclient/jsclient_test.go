package jsclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// TestEncryptedRoundTrip proves the client is a real E2EE peer: two
// matrix-js-sdk devices on a real Dendrite exchange Megolm-encrypted
// messages both ways, and each decrypts what the other sent.
func TestEncryptedRoundTrip(t *testing.T) {
	hs := dendrite.Start(t, dendrite.Options{})
	alice := hs.Register(t, "alice", "alice-password", "ALICEJS")
	bob := hs.Register(t, "bob", "bob-password", "BOBJS")

	began := time.Now()
	a := jsclient.Start(t, hs.URL, alice.UserID, alice.AccessToken, alice.DeviceID)
	b := jsclient.Start(t, hs.URL, bob.UserID, bob.AccessToken, bob.DeviceID)
	t.Logf("two clients ready in %s", time.Since(began))
	if a.UserID != alice.UserID || a.DeviceID != "ALICEJS" {
		t.Errorf("alice's client is %s/%s", a.UserID, a.DeviceID)
	}

	began = time.Now()
	room := a.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bob.UserID}, IsDirect: true})
	inv := b.WaitInvite(t, 20*time.Second)
	if inv.RoomID != room || inv.Inviter != alice.UserID {
		t.Errorf("bob's invite = %+v, want room %s from %s", inv, room, alice.UserID)
	}
	b.Join(t, room)
	a.WaitMember(t, room, bob.UserID, "join", 20*time.Second)

	sent := a.Send(t, room, "hello bob, canary 7f3a9c")
	if !sent.Encrypted {
		t.Errorf("alice's message was sent unencrypted: %+v", sent)
	}
	got := b.WaitMessage(t, room, 20*time.Second)
	if got.Body != "hello bob, canary 7f3a9c" || got.Sender != alice.UserID || !got.Decrypted || got.EventID != sent.EventID {
		t.Errorf("bob got %+v, want alice's decrypted message %s", got, sent.EventID)
	}

	reply := b.Send(t, room, "hi alice")
	if back := a.WaitMessageFrom(t, room, bob.UserID, 20*time.Second); back.Body != "hi alice" || !back.Decrypted || back.EventID != reply.EventID {
		t.Errorf("alice got %+v", back)
	}
	t.Logf("encrypted round trip in %s", time.Since(began))

	// The server only ever saw ciphertext.
	var raw struct {
		Type    string         `json:"type"`
		Content map[string]any `json:"content"`
	}
	hs.DoJSON(t, "GET", "/_matrix/client/v3/rooms/"+room+"/event/"+sent.EventID, bob.AccessToken, nil, &raw)
	if raw.Type != "m.room.encrypted" || raw.Content["algorithm"] != "m.megolm.v1.aes-sha2" {
		t.Errorf("the server holds %s %v, want an m.megolm.v1.aes-sha2 m.room.encrypted event", raw.Type, raw.Content["algorithm"])
	}
	if strings.Contains(hs.Log(), "canary 7f3a9c") {
		t.Error("the plaintext reached Dendrite's log")
	}

	a.Quit(t)
	b.Quit(t)
}

func TestWaitMessageTimesOut(t *testing.T) {
	hs := dendrite.Start(t, dendrite.Options{})
	sess := hs.Register(t, "carol", "carol-password", "")
	c := jsclient.Start(t, hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	room := c.CreateRoom(t, jsclient.CreateRoomOptions{Name: "quiet"})
	// Own messages are not returned by wait_message.
	if sent := c.Send(t, room, "talking to myself"); sent.Encrypted {
		t.Errorf("message in an unencrypted room was encrypted: %+v", sent)
	}
	err := c.Call(t.Context(), "wait_message", map[string]any{"room": room, "timeout_ms": 500}, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("wait_message in a quiet room: %v, want a timeout", err)
	}
	if err := c.Call(t.Context(), "no_such_command", nil, nil); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
}

func TestStartLogin(t *testing.T) {
	hs := dendrite.Start(t, dendrite.Options{})
	hs.RegisterUser(t, "dave", "dave-password")
	c := jsclient.StartLogin(t, hs.URL, "dave", "dave-password", "DAVEJS")
	if c.UserID != "@dave:localhost" || c.DeviceID != "DAVEJS" {
		t.Errorf("logged in as %s/%s", c.UserID, c.DeviceID)
	}
}
