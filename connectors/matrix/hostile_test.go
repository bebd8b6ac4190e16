package matrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// stubEnv is a bridge whose homeserver is a stubHomeserver, with a
// conversation between "!portal:localhost" and the loopback chat "chat-1".
type stubEnv struct {
	*env
	hs *stubHomeserver
}

const stubPortal = "!portal:localhost"

func startStubBridge(t testing.TB, configure ...func(*config.Config)) *stubEnv {
	t.Helper()
	cfg := testConfig(t)
	cfg.Encryption.Allow = false
	for _, fn := range configure {
		fn(cfg)
	}
	hs := newStubHomeserver(t, cfg.BotUserID().String())
	cfg.Homeserver.Address = hs.URL
	e := startBridge(t, cfg, "", nil)
	waitFor(t, 10*time.Second, "connector healthy", func() bool {
		return e.conn.Health(context.Background()).State == bridge.HealthOK
	})
	e.conn.SetLegTimerHandler(matrix.NewRouterLegTimer(e.router))
	require.Equal(t, stubPortal, e.loopPortal(t, "@alice:localhost", bridge.Sender{ID: "contact-1", DisplayName: "Contact"}))
	return &stubEnv{env: e, hs: hs}
}

// putRaw sends a transaction whose events are given as raw JSON.
func putRaw(t testing.TB, h http.Handler, token, txnID string, events ...string) int {
	t.Helper()
	body := []byte(`{"events":[` + string(bytes.Join(toBytes(events), []byte(","))) + `]}`)
	req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/"+txnID, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func stateEvent(eventID, room, sender, typ string, content any) map[string]any {
	return map[string]any{
		"event_id": eventID, "room_id": room, "sender": sender, "type": typ, "state_key": "",
		"origin_server_ts": time.Now().UnixMilli(), "content": content,
	}
}

// hostileEvents are events anyone on the federation can put in a room the
// bot is in; none may make the transaction fail.
func hostileEvents(t testing.TB, room, sender string) map[string]string {
	negTimer := map[string]any{"type": "after_send", "timer": -1000}
	msg := func(id string, content any) string {
		return jsonOf(t, map[string]any{"event_id": id, "room_id": room, "sender": sender, "type": "m.room.message",
			"origin_server_ts": time.Now().UnixMilli(), "content": content})
	}
	return map[string]string{
		"negative room timer":        jsonOf(t, stateEvent("$h-neg", room, sender, "com.beeper.disappearing_timer", negTimer)),
		"huge room timer":            jsonOf(t, stateEvent("$h-huge", room, sender, "com.beeper.disappearing_timer", map[string]any{"type": "after_send", "timer": int64(1) << 62})),
		"unknown timer type":         jsonOf(t, stateEvent("$h-type", room, sender, "com.beeper.disappearing_timer", map[string]any{"type": "whenever", "timer": 1000})),
		"timer content not a map":    jsonOf(t, stateEvent("$h-tstr", room, sender, "com.beeper.disappearing_timer", "soon")),
		"null event":                 `null`,
		"event is a string":          `"hello"`,
		"event is a number":          `42`,
		"event is a list":            `[{"type":"m.room.message"}]`,
		"event without IDs":          `{"type":"m.room.message","content":{"msgtype":"m.text","body":"x"}}`,
		"content is a string":        msg("$h-cstr", "hi"),
		"content is null":            msg("$h-cnull", nil),
		"body is a number":           msg("$h-bnum", map[string]any{"msgtype": "m.text", "body": 123}),
		"negative message timer":     msg("$h-mneg", map[string]any{"msgtype": "m.text", "body": "x", "com.beeper.disappearing_timer": negTimer}),
		"media without a file":       msg("$h-media", map[string]any{"msgtype": "m.image", "body": "x.png", "info": map[string]any{"size": -5}}),
		"edit without new content":   msg("$h-edit", map[string]any{"msgtype": "m.text", "body": "*", "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": "$nothing"}}),
		"reply to an unknown event":  msg("$h-reply", map[string]any{"msgtype": "m.text", "body": "x", "m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": 7}}}),
		"reaction without relation":  jsonOf(t, map[string]any{"event_id": "$h-react", "room_id": room, "sender": sender, "type": "m.reaction", "content": map[string]any{}}),
		"redaction without a target": jsonOf(t, map[string]any{"event_id": "$h-redact", "room_id": room, "sender": sender, "type": "m.room.redaction", "content": map[string]any{}}),
		"member with odd membership": jsonOf(t, map[string]any{"event_id": "$h-member", "room_id": room, "sender": sender, "type": "m.room.member", "state_key": "@switchboard:localhost", "content": map[string]any{"membership": "dance"}}),
		"encrypted garbage":          jsonOf(t, map[string]any{"event_id": "$h-enc", "room_id": room, "sender": sender, "type": "m.room.encrypted", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA", "session_id": "nope", "sender_key": "nope", "device_id": "X"}}),
		"encrypted without content":  jsonOf(t, map[string]any{"event_id": "$h-enc2", "room_id": room, "sender": sender, "type": "m.room.encrypted", "content": map[string]any{}}),
	}
}

// TestHostileEventsDoNotStall: every hostile event, in a stranger's room
// and in a portal, is answered 200 together with a normal message behind
// it in the same transaction, which is delivered once. Before, a negative
// room timer or a null event made the transaction fail (500) for ever.
func TestHostileEventsDoNotStall(t *testing.T) {
	e := startStubBridge(t)
	h := e.conn.AppserviceHandler()
	token := e.cfg.Appservice.HSToken
	n := 0
	for _, room := range []string{"!stranger:localhost", stubPortal} {
		for name, hostile := range hostileEvents(t, room, "@mallory:localhost") {
			t.Run(room+"/"+name, func(t *testing.T) {
				n++
				good := fmt.Sprintf("$good-%d", n)
				code := putRaw(t, h, token, fmt.Sprintf("hostile-%d", n), hostile,
					jsonOf(t, textEvent(good, stubPortal, "@alice:localhost", "still here")))
				require.Equal(t, http.StatusOK, code)
				waitFor(t, 5*time.Second, "the message behind the hostile event delivered", func() bool {
					return deliveries(e.lb.Sent(), good) == 1
				})
			})
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, s := range e.lb.Sent() {
		assert.NotContains(t, []string{"$h-cstr", "$h-cnull", "$h-bnum"}, string(s.Delivery.Event.SourceID), "content that does not parse is not bridged")
	}
}

// deliveries counts the deliveries of one source event.
func deliveries(sent []bridgetest.Sent, source string) int {
	n := 0
	for _, s := range sent {
		if s.Delivery.Event.SourceID == bridge.RemoteID(source) {
			n++
		}
	}
	return n
}

// TestInvalidTimerToldOnce: an invalid timer set in a portal is answered
// once with a notice, even when several transactions carry it.
func TestInvalidTimerToldOnce(t *testing.T) {
	e := startStubBridge(t)
	h := e.conn.AppserviceHandler()
	evt := jsonOf(t, stateEvent("$neg", stubPortal, "@alice:localhost", "com.beeper.disappearing_timer", map[string]any{"type": "after_send", "timer": -1000}))
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "t1", evt))
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "t2", evt))
	notices := 0
	for _, m := range e.hs.sent() {
		if m.Room == stubPortal {
			assert.Contains(t, m.Body, "invalid")
			notices++
		}
	}
	assert.Equal(t, 1, notices)
	// A stranger's room gets no answer at all.
	stranger := jsonOf(t, stateEvent("$neg2", "!stranger:localhost", "@mallory:localhost", "com.beeper.disappearing_timer", map[string]any{"type": "after_send", "timer": -1000}))
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "t3", stranger))
	for _, m := range e.hs.sent() {
		assert.NotEqual(t, "!stranger:localhost", m.Room)
	}
}

// TestConcurrentTransactionsAnswerOnce: one command event carried by eight
// concurrent transactions is answered once (the handled check was
// check-then-act: eight answers).
func TestConcurrentTransactionsAnswerOnce(t *testing.T) {
	e := startStubBridge(t)
	h := e.conn.AppserviceHandler()
	for round := range 3 {
		evtID := fmt.Sprintf("$whoami-%d", round)
		evt := jsonOf(t, textEvent(evtID, "!anyroom:localhost", "@alice:localhost", "!sb whoami"))
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if putRaw(t, h, e.cfg.Appservice.HSToken, fmt.Sprintf("c%d-%d", round, i), evt) != http.StatusOK {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Zero(t, failed.Load())
		assert.Equal(t, 1, e.hs.repliesTo(evtID), "answered once")
	}
}

// TestFailingEventSetAside: an event that keeps failing for a passing
// reason of the bridge's own makes the homeserver retry a bounded number
// of times; then it is set aside (admins told once, by event ID) and the
// events behind it go through.
func TestFailingEventSetAside(t *testing.T) {
	e := startStubBridge(t)
	var calls atomic.Int32
	e.conn.SetLegTimerHandler(func(context.Context, bridge.Leg, time.Duration, bool) error {
		calls.Add(1)
		return fmt.Errorf("%w: injected", bridge.ErrDatabase)
	})
	var mu sync.Mutex
	var told []string
	e.conn.SetAdminNotifier(func(_ context.Context, key, text string) {
		mu.Lock()
		told = append(told, text)
		mu.Unlock()
	})
	h := e.conn.AppserviceHandler()
	flaky := jsonOf(t, stateEvent("$flaky", stubPortal, "@alice:localhost", "com.beeper.disappearing_timer", map[string]any{"type": "after_send", "timer": 60000}))
	good := jsonOf(t, textEvent("$behind", stubPortal, "@alice:localhost", "behind the flaky one"))
	codes := []int{}
	for range 10 {
		code := putRaw(t, h, e.cfg.Appservice.HSToken, "flaky-txn", flaky, good)
		codes = append(codes, code)
		if code == http.StatusOK {
			break
		}
		assert.Empty(t, e.lb.Sent(), "nothing behind the failing event ran")
	}
	require.Equal(t, http.StatusOK, codes[len(codes)-1], "codes %v", codes)
	assert.Len(t, codes, 5, "set aside after a bounded number of attempts")
	for _, c := range codes[:len(codes)-1] {
		assert.Equal(t, http.StatusServiceUnavailable, c)
	}
	sent := e.lb.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.RemoteID("$behind"), sent[0].Delivery.Event.SourceID)
	mu.Lock()
	require.Len(t, told, 1)
	assert.Contains(t, told[0], "$flaky")
	mu.Unlock()
	var n int
	require.NoError(t, e.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM sb_matrix_setaside WHERE event_id='$flaky'`).Scan(&n))
	assert.Equal(t, 1, n)
	// The transaction is done: replaying it runs nothing again.
	before := calls.Load()
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "flaky-txn", flaky, good))
	assert.Equal(t, before, calls.Load())
}

// FuzzTransaction: any event JSON, carried twice in each of two concurrent
// transactions, never yields a 5xx or a panic, and never a second side
// effect (a second answer to one event, or a second delivery).
func FuzzTransaction(f *testing.F) {
	e := startStubBridge(f)
	h := e.conn.AppserviceHandler()
	for _, hostile := range hostileEvents(f, stubPortal, "@mallory:localhost") {
		f.Add(hostile)
	}
	f.Add(jsonOf(f, textEvent("$f-cmd", stubPortal, "@alice:localhost", "!sb whoami")))
	f.Add(jsonOf(f, textEvent("$f-bad", stubPortal, "@nobody:elsewhere", "!sb help")))
	f.Add(jsonOf(f, textEvent("$f-msg", stubPortal, "@alice:localhost", "hello")))
	f.Add(jsonOf(f, map[string]any{"event_id": "$f-inv", "room_id": "!r:localhost", "sender": "@alice:localhost", "type": "m.room.member", "state_key": "@switchboard:localhost", "content": map[string]any{"membership": "invite", "is_direct": true}}))
	var txn atomic.Int64
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			t.Skip("not JSON: the transaction would not be well-formed")
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = putRaw(t, h, e.cfg.Appservice.HSToken, fmt.Sprintf("fz%d", txn.Add(1)), raw, raw)
			}()
		}
		wg.Wait()
		for _, code := range codes {
			require.Less(t, code, 500, "no 5xx for an event")
		}
		replies := map[string]int{}
		for _, m := range e.hs.sent() {
			if m.ReplyTo != "" {
				replies[m.ReplyTo]++
				require.Equal(t, 1, replies[m.ReplyTo], "one answer per event (%s)", m.ReplyTo)
			}
		}
		seen := map[bridge.RemoteID]bool{}
		for _, s := range e.lb.Sent() {
			id := s.Delivery.Event.SourceID
			require.False(t, seen[id], "one delivery per event (%s)", id)
			seen[id] = true
		}
	})
}
