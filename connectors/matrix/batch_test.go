package matrix_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// TestTransactionEventsCommittedInOrder: a transaction of many messages
// with a command, hostile events, a stranger's message and a repeated
// event among them (the messages are accepted together, the others alone
// in between) is acknowledged only once every message is committed, and
// the messages are delivered once each, in the transaction's order; the
// command is answered once.
func TestTransactionEventsCommittedInOrder(t *testing.T) {
	e := startStubBridge(t)
	h := e.conn.AppserviceHandler()
	var events []string
	var want []string
	for i := range 30 {
		id := fmt.Sprintf("$order-%d", i)
		events = append(events, jsonOf(t, textEvent(id, stubPortal, "@alice:localhost", fmt.Sprintf("message %d", i))))
		want = append(want, id)
		switch i {
		case 9:
			events = append(events, jsonOf(t, textEvent("$order-cmd", "!dm:localhost", "@alice:localhost", "!sb whoami")))
		case 14:
			events = append(events, `{"event_id":"$order-bad","room_id":"`+stubPortal+`","sender":"@alice:localhost","type":"m.room.message","content":"not an object"}`)
			// Content that is an object but no message: parsed once,
			// before it would join the batch, and skipped.
			events = append(events, `{"event_id":"$order-badbody","room_id":"`+stubPortal+`","sender":"@alice:localhost","type":"m.room.message","content":{"msgtype":"m.text","body":5}}`)
			events = append(events, jsonOf(t, textEvent("$order-stranger", "!stranger:localhost", "@mallory:localhost", "hi")))
		case 20:
			events = append(events, events[len(events)-1]) // the same event twice
		}
	}
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "order-1", events...))
	var n int
	require.NoError(t, e.db.QueryRow(context.Background(),
		`SELECT COUNT(*) FROM sb_message WHERE network='matrix' AND remote_id LIKE '$order-%'`).Scan(&n))
	assert.Equal(t, 30, n, "every message committed before the acknowledgement")

	sent := e.lb.WaitSent(30, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	sent = e.lb.Sent()
	var got []string
	for _, s := range sent {
		got = append(got, string(s.Delivery.Event.SourceID))
	}
	assert.Equal(t, want, got, "delivered once each, in order")
	assert.Equal(t, 1, e.hs.repliesTo("$order-cmd"), "the command answered once")

	// The transaction again: nothing more.
	require.Equal(t, http.StatusOK, putRaw(t, h, e.cfg.Appservice.HSToken, "order-1", events...))
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, e.lb.Sent(), 30)
	for _, s := range e.lb.Sent() {
		assert.Equal(t, bridge.ChatID("chat-1"), s.Chat)
	}
}
