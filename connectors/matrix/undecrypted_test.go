//go:build goolm

package matrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// gate is a proxy between the bridge's client and Dendrite that can hold
// the bot's /sync (so room keys, which come as to-device events, stay
// away) and refuse the bot device's login (so encryption cannot start).
// Dendrite sends transactions to the bridge directly, not through it.
type gate struct {
	mu        sync.Mutex
	cond      *sync.Cond
	holding   bool
	held      int
	inflight  map[*http.Request]context.CancelFunc
	failLogin bool
	proxy     *httputil.ReverseProxy
}

func newGate(t testing.TB, target string) (*gate, string) {
	u, err := url.Parse(target)
	require.NoError(t, err)
	g := &gate{inflight: make(map[*http.Request]context.CancelFunc), proxy: httputil.NewSingleHostReverseProxy(u)}
	g.cond = sync.NewCond(&g.mu)
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		g.release()
		_ = srv.Close()
	})
	return g, "http://" + ln.Addr().String()
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/login") && r.Method == http.MethodPost:
		g.mu.Lock()
		fail := g.failLogin
		g.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"login held by the test"}`))
			return
		}
	case strings.HasSuffix(r.URL.Path, "/sync"):
		g.mu.Lock()
		for g.holding {
			g.held++
			g.cond.Wait()
			g.held--
		}
		ctx, cancel := context.WithCancel(r.Context())
		r = r.WithContext(ctx)
		g.inflight[r] = cancel
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.inflight, r)
			g.mu.Unlock()
			cancel()
		}()
	}
	g.proxy.ServeHTTP(w, r)
}

// hold holds new /sync requests and ends those in flight, so the sync loop
// comes back and waits at the gate.
func (g *gate) hold(t testing.TB) {
	g.mu.Lock()
	g.holding = true
	for _, cancel := range g.inflight {
		cancel()
	}
	g.mu.Unlock()
	waitFor(t, 15*time.Second, "the bot's sync held", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.held > 0
	})
}

func (g *gate) release() {
	g.mu.Lock()
	g.holding = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *gate) setFailLogin(fail bool) {
	g.mu.Lock()
	g.failLogin = fail
	g.mu.Unlock()
}

// startGated is startWithDendrite with the bridge's homeserver address on
// a gate in front of Dendrite. It does not wait for the connector to be
// healthy.
func startGated(t testing.TB, failLogin bool, configure ...func(*config.Config)) (*env, *gate) {
	t.Helper()
	var g *gate
	e := startOnDendrite(t, nil, func(hsURL string) string {
		var addr string
		g, addr = newGate(t, hsURL)
		g.setFailLogin(failLogin)
		return addr
	}, configure...)
	return e, g
}

func keptCount(t testing.TB, e *env, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM sb_matrix_undecrypted `+where, args...).Scan(&n))
	return n
}

// fakeMegolm is the content of an m.room.encrypted event whose room key
// nobody will ever send.
func fakeMegolm(session string) map[string]any {
	return map[string]any{
		"algorithm":  "m.megolm.v1.aes-sha2",
		"ciphertext": "AwgAEnB4nW6Ue3f0qCkPZ8o1mQ",
		"device_id":  "NOSUCHDEVICE",
		"sender_key": "Hk2j6y0aZ8Ck4vK8Y4d9w0sQ2mXqJrYV1n3aG8Tj5Xo",
		"session_id": session,
	}
}

// TestUndecryptableEventWaitsForKey: an encrypted command whose room key
// has not reached the bridge (the bot's /sync is held) does not hold up
// its transaction: the event is kept, and 20 more undecryptable events in
// one transaction are answered at once. When the key arrives the command
// is decrypted and answered — also when the bridge restarted in between —
// and the kept row is gone.
func TestUndecryptableEventWaitsForKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool
	}{
		{"key arrives", false},
		{"key arrives after a restart", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, g := startGated(t, false)
			waitFor(t, 15*time.Second, "connector healthy", func() bool {
				return e.conn.Health(context.Background()).State == bridge.HealthOK
			})
			sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
			js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
			bot := e.conn.BotUserID().String()
			room := js.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bot}, IsDirect: true})
			js.WaitMember(t, room, bot, "join", 20*time.Second)
			greeting := js.WaitMessageFrom(t, room, bot, 30*time.Second)
			require.Contains(t, greeting.Body, "Hello")

			g.hold(t)
			sent := js.Send(t, room, "help")
			require.True(t, sent.Encrypted)
			waitFor(t, 15*time.Second, "the command kept until its key arrives", func() bool {
				return keptCount(t, e, "WHERE event_id=$1", sent.EventID) == 1
			})

			// 20 undecryptable events in one transaction: answered at once.
			var events []map[string]any
			for i := range 20 {
				events = append(events, map[string]any{
					"event_id": fmt.Sprintf("$undecryptable%d", i), "room_id": room, "sender": sess.UserID,
					"type": "m.room.encrypted", "origin_server_ts": time.Now().UnixMilli(),
					"content": fakeMegolm(fmt.Sprintf("nosession%d", i)),
				})
			}
			began := time.Now()
			require.Equal(t, http.StatusOK, putTxn(t, e.conn.AppserviceHandler(), e.cfg.Appservice.HSToken, "undecryptable-1", events...))
			assert.Less(t, time.Since(began), 3*time.Second, "a transaction of undecryptable events does not wait for keys")
			assert.Equal(t, 21, keptCount(t, e, "WHERE room_id=$1", room))

			if tc.restart {
				e.stop()
				g.release()
				e = startBridgeDB(t, e.cfg, e.dbo, nil)
				assert.Equal(t, 21, keptCount(t, e, "WHERE room_id=$1", room), "kept events survive the restart")
			} else {
				time.Sleep(time.Second)
				assert.Equal(t, 1, keptCount(t, e, "WHERE event_id=$1", sent.EventID), "no key, no answer")
				g.release()
			}
			var answer jsclient.Message
			for i := 0; i < 3 && !strings.Contains(answer.Body, "whoami"); i++ {
				answer = js.WaitMessageFrom(t, room, bot, 30*time.Second)
			}
			assert.Contains(t, answer.Body, "whoami", "the command is answered once its key arrives")
			assert.True(t, answer.Decrypted)
			waitFor(t, 10*time.Second, "the handled event dropped", func() bool {
				return keptCount(t, e, "WHERE event_id=$1", sent.EventID) == 0
			})
			assert.Equal(t, 20, keptCount(t, e, "WHERE room_id=$1", room), "events without a key still wait")
		})
	}
}

// TestUndecryptableEventDeadline: an encrypted event whose key never comes
// is dropped after the deadline and its sender told once, in a reply;
// beyond the per-room bound, the sender is told at once and nothing more
// is kept. The bound holds per sender too.
func TestUndecryptableEventDeadline(t *testing.T) {
	e := startWithDendrite(t)
	alice := e.newUser(t, "alice")
	bob := e.newUser(t, "bob")
	bot := e.conn.BotUserID().String()
	// The bot answers encrypted, as the room holds encrypted events; the
	// bot can read its own Megolm session back.
	noticesTo := func(room, what string) []roomEvent {
		var out []roomEvent
		for _, evt := range alice.messages(t, room) {
			if evt.Sender != bot {
				continue
			}
			if evt.Type == "m.room.encrypted" {
				evt = decryptForTest(t, e, alice, room, evt)
			}
			if strings.Contains(body(evt), what) {
				out = append(out, evt)
			}
		}
		return out
	}
	replyTo := func(evt roomEvent) string {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		in, _ := rel["m.in_reply_to"].(map[string]any)
		s, _ := in["event_id"].(string)
		return s
	}

	// The bound: the event beyond it is refused at once.
	full := alice.createRoom(t, map[string]any{"invite": []string{bot}})
	waitFor(t, 15*time.Second, "bot joined", func() bool { return alice.membership(t, full, bot) == "join" })
	for i := range matrix.MaxUndecryptedPerRoom {
		alice.send(t, full, "m.room.encrypted", fakeMegolm(fmt.Sprintf("full%d", i)))
	}
	waitFor(t, 15*time.Second, "the room's events kept", func() bool {
		return keptCount(t, e, "WHERE room_id=$1", full) == matrix.MaxUndecryptedPerRoom
	})
	over := alice.send(t, full, "m.room.encrypted", fakeMegolm("over"))
	waitFor(t, 10*time.Second, "told at once", func() bool { return len(noticesTo(full, "too many")) == 1 })
	assert.Equal(t, over, replyTo(noticesTo(full, "too many")[0]))
	assert.Equal(t, matrix.MaxUndecryptedPerRoom, keptCount(t, e, "WHERE room_id=$1", full))

	// The same sender elsewhere: refused too.
	other := alice.createRoom(t, map[string]any{"invite": []string{bot, bob.id}})
	waitFor(t, 15*time.Second, "bot joined", func() bool { return alice.membership(t, other, bot) == "join" })
	alice.send(t, other, "m.room.encrypted", fakeMegolm("elsewhere"))
	waitFor(t, 10*time.Second, "told at once", func() bool { return len(noticesTo(other, "too many")) == 1 })
	assert.Equal(t, 0, keptCount(t, e, "WHERE room_id=$1", other))

	// The deadline, for another sender.
	matrix.SetKeyDeadlineForTest(e.conn, 2*time.Second)
	room := other
	bob.join(t, room)
	sentAt := time.Now()
	evtID := bob.send(t, room, "m.room.encrypted", fakeMegolm("nokey"))
	waitFor(t, 15*time.Second, "the sender told", func() bool { return len(noticesTo(room, "did not receive the key")) > 0 })
	assert.GreaterOrEqual(t, time.Since(sentAt), 2*time.Second, "not before the deadline")
	notices := noticesTo(room, "did not receive the key")
	require.Len(t, notices, 1)
	assert.Equal(t, "⚠️ Your encrypted message was not delivered: the bridge did not receive the key for it.", body(notices[0]))
	assert.Equal(t, evtID, replyTo(notices[0]))
	assert.Equal(t, 0, keptCount(t, e, "WHERE room_id=$1", room))

	// The full room's events reach their deadline too: each sender told
	// once, the room emptied.
	waitFor(t, 20*time.Second, "the full room emptied", func() bool { return keptCount(t, e, "WHERE room_id=$1", full) == 0 })
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, noticesTo(full, "did not receive the key"), matrix.MaxUndecryptedPerRoom)
}

// TestTransactionBeforeEncryptionStarts: while the bot device cannot log
// in (encryption not started), transactions get 503 and nothing of them
// runs; once encryption starts, the homeserver's retry is handled once.
func TestTransactionBeforeEncryptionStarts(t *testing.T) {
	e, g := startGated(t, true)
	ctx := context.Background()
	waitFor(t, 15*time.Second, "encryption failing to start", func() bool {
		return strings.Contains(e.conn.Health(ctx).Message, "encryption")
	})
	const room = "!portal:localhost"
	_, err := e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: room},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	h := e.conn.AppserviceHandler()
	evt := textEvent("$early", room, e.hs.UserID("alice"), "hello early")
	for range 3 {
		assert.Equal(t, http.StatusServiceUnavailable, putTxn(t, h, e.cfg.Appservice.HSToken, "early", evt))
	}
	time.Sleep(300 * time.Millisecond)
	assert.Empty(t, e.lb.Sent(), "nothing of the transaction ran")

	g.setFailLogin(false)
	waitFor(t, 30*time.Second, "connector healthy", func() bool { return e.conn.Health(ctx).State == bridge.HealthOK })
	assert.Equal(t, http.StatusOK, putTxn(t, h, e.cfg.Appservice.HSToken, "early", evt))
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, "hello early", sent[0].Delivery.Event.Content.Body)
}

// decryptForTest decrypts an event the bot sent into an encrypted room.
func decryptForTest(t testing.TB, e *env, u *user, room string, evt roomEvent) roomEvent {
	t.Helper()
	var full map[string]any
	status := u.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(evt.EventID), nil, &full)
	require.Equal(t, http.StatusOK, status)
	full["room_id"] = room
	data, err := json.Marshal(full)
	require.NoError(t, err)
	var raw event.Event
	require.NoError(t, json.Unmarshal(data, &raw))
	require.NoError(t, raw.Content.ParseRaw(raw.Type))
	decrypted, err := e.conn.DecryptEventForTest(context.Background(), &raw)
	require.NoError(t, err)
	out := evt
	out.Type = decrypted.Type.Type
	require.NoError(t, json.Unmarshal(decrypted.Content.VeryRaw, &out.Content))
	return out
}
