package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
)

// rowsOf counts a message's rows in sb_message and sb_queue.
func rowsOf(t testing.TB, h *harness, msg bridge.MessageID) (messages, queued int) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM sb_message WHERE message_id=$1`, msg).Scan(&messages))
	require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM sb_queue WHERE message_id=$1`, msg).Scan(&queued))
	return messages, queued
}

// waitDelete waits for a delete recorded by a loopback connector.
func waitDelete(t testing.TB, c *bridgetest.Loopback, target bridge.RemoteID, timeout time.Duration) bridgetest.Sent {
	t.Helper()
	var got bridgetest.Sent
	require.Eventually(t, func() bool {
		for _, s := range c.Sent() {
			if s.Kind == bridge.KindDelete && s.Delivery.Target == target {
				got = s
				return true
			}
		}
		return false
	}, timeout, 5*time.Millisecond, "no delete of %s on %s", target, c.Network())
	return got
}

// TestExpiredMessageDeletedEverywhere: a message with a 1 s timer is deleted
// on every leg that can delete (the source leg too), skipped on one that
// cannot, and its rows are gone within the deadline plus a second.
func TestExpiredMessageDeletedEverywhere(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		noDelete := &minimal{network: netC} // like SMS: cannot delete
		h := startHarness(t, dbo, withConnector(noDelete))
		h.conversation(legA("room"), legB("chat"), bridge.Leg{Network: netC, Chat: "sms"})
		ctx := context.Background()
		evt := text("room", "$vanishing", "self-destructs")
		evt.Timer = time.Second
		accepted := time.Now()
		require.NoError(t, h.a.Receive(ctx, evt))
		sent := h.b.WaitSent(1, 5*time.Second)
		require.Len(t, sent, 1)
		msg := sent[0].Delivery.Message
		require.False(t, sent[0].Delivery.Expires.IsZero(), "the delivery tells the connector the deadline")

		del := waitDelete(t, h.b, sent[0].RemoteID, 3*time.Second)
		require.Equal(t, bridge.ChatID("chat"), del.Chat)
		require.Equal(t, msg, del.Delivery.Message)
		waitDelete(t, h.a, "$vanishing", 3*time.Second) // the source copy too
		require.Eventually(t, func() bool {
			m, q := rowsOf(t, h, msg)
			return m == 0 && q == 0
		}, time.Until(accepted.Add(2*time.Second)), 10*time.Millisecond, "rows outlived the deadline")
		require.WithinDuration(t, accepted.Add(time.Second), del.At, 1500*time.Millisecond)
		require.GreaterOrEqual(t, del.At.Sub(accepted), 900*time.Millisecond, "deleted before its deadline")
		require.Len(t, noDelete.got, 1, "the SMS-like leg got the message and no delete")
		require.Equal(t, float64(1), metricValue(h, "switchboard_expired_messages_total", map[string]string{"network": "loopc", "result": "skipped"}))
		require.Equal(t, float64(1), metricValue(h, "switchboard_expired_messages_total", map[string]string{"network": "loopb", "result": "deleted"}))
	})
}

// TestExpiredQueueRowsPurged: a copy that could not be delivered before its
// deadline leaves no queue row behind.
func TestExpiredQueueRowsPurged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) { o.RetryBase = 5 * time.Second }))
		h.conversation(legA("room"), legB("chat"))
		h.b.OnSend(func(d *bridge.Delivery) error {
			if d.Event.Kind == bridge.KindMessage {
				return errors.New("network down")
			}
			return nil
		})
		ctx := context.Background()
		evt := text("room", "$stuck", "never arrives")
		evt.Timer = 500 * time.Millisecond
		require.NoError(t, h.a.Receive(ctx, evt))
		var msg bridge.MessageID
		require.NoError(t, h.db.QueryRow(ctx, `SELECT message_id FROM sb_message WHERE remote_id='$stuck'`).Scan(&msg))
		_, q := rowsOf(t, h, msg)
		require.Equal(t, 1, q)
		require.Eventually(t, func() bool {
			m, q := rowsOf(t, h, msg)
			return m == 0 && q == 0
		}, 2*time.Second, 10*time.Millisecond)
	})
}

// TestExpiryTransientFailureRetried: a delete that fails transiently is
// tried again, and the row stays until it succeeds.
func TestExpiryTransientFailureRetried(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("room"), legB("chat"))
	failures := 1
	h.b.OnSend(func(d *bridge.Delivery) error {
		if d.Event.Kind == bridge.KindDelete && failures > 0 {
			failures--
			return errors.New("timeout")
		}
		return nil
	})
	evt := text("room", "$retry", "x")
	evt.Timer = 300 * time.Millisecond
	require.NoError(t, h.a.Receive(context.Background(), evt))
	sent := h.b.WaitSent(1, 5*time.Second)
	waitDelete(t, h.b, sent[0].RemoteID, 4*time.Second)
	require.Eventually(t, func() bool {
		m, q := rowsOf(t, h, sent[0].Delivery.Message)
		return m == 0 && q == 0
	}, 2*time.Second, 10*time.Millisecond)
}

// TestExpirySurvivesRestart: messages whose deadline passed while the
// daemon was down are deleted at start.
func TestExpirySurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		evt := text("room", "$before-restart", "x")
		evt.Timer = 1500 * time.Millisecond
		require.NoError(t, h.a.Receive(ctx, evt))
		reply := text("chat", "sms-reply", "y")
		reply.Source = legB("chat")
		reply.Timer = 1500 * time.Millisecond
		require.NoError(t, h.b.Receive(ctx, reply))
		toB := h.b.WaitSent(1, 5*time.Second)
		toA := h.a.WaitSent(1, 5*time.Second)
		waitQueueEmpty(t, h.router)
		h.stop()
		for _, s := range append(h.a.Sent(), h.b.Sent()...) {
			require.NotEqual(t, bridge.KindDelete, s.Kind, "expired before the restart; make the timer longer")
		}
		time.Sleep(1600 * time.Millisecond)

		h2 := startHarness(t, dbo)
		waitDelete(t, h2.b, toB[0].RemoteID, 2*time.Second)
		waitDelete(t, h2.a, "$before-restart", 2*time.Second)
		waitDelete(t, h2.a, toA[0].RemoteID, 2*time.Second)
		waitDelete(t, h2.b, "sms-reply", 2*time.Second)
		require.Eventually(t, func() bool {
			m1, q1 := rowsOf(t, h2, toB[0].Delivery.Message)
			m2, q2 := rowsOf(t, h2, toA[0].Delivery.Message)
			return m1+q1+m2+q2 == 0
		}, 2*time.Second, 10*time.Millisecond)
	})
}

// TestExpiredRowsLeaveNoTraceInSQLiteFiles reads the raw database files
// after an expiry: no remote ID or message ID of the expired message is
// left in the main file, the WAL or the shared-memory index.
func TestExpiredRowsLeaveNoTraceInSQLiteFiles(t *testing.T) {
	dbo := dbtest.SQLite(t)
	h := startHarness(t, dbo)
	h.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	const source = "$zq7Xsecret-event-id"
	evt := text("room", source, "x")
	evt.Timer = 500 * time.Millisecond
	require.NoError(t, h.a.Receive(ctx, evt))
	sent := h.b.WaitSent(1, 5*time.Second)
	msg := sent[0].Delivery.Message
	waitDelete(t, h.b, sent[0].RemoteID, 3*time.Second)
	waitDelete(t, h.a, source, 3*time.Second)
	require.Eventually(t, func() bool {
		m, q := rowsOf(t, h, msg)
		return m == 0 && q == 0
	}, 2*time.Second, 10*time.Millisecond)

	needles := [][]byte{[]byte(source), []byte(msg), []byte(sent[0].RemoteID)}
	traces := func() []string {
		var out []string
		files, err := filepath.Glob(dbo.URI + "*")
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue // the WAL went away between Glob and ReadFile
			}
			require.NoError(t, err)
			for _, n := range needles {
				if bytes.Contains(data, n) {
					out = append(out, filepath.Base(f)+": "+string(n))
				}
			}
		}
		return out
	}
	// While running: secure_delete zeroed the rows, and the purge's
	// TRUNCATE checkpoint emptied the WAL.
	require.Eventually(t, func() bool { return len(traces()) == 0 }, 3*time.Second, 50*time.Millisecond,
		"expired IDs still in the running database files: %v", traces())
	h.stop()
	require.Empty(t, traces(), "after stop")
}

// TestMetadataMinimization: mapping rows without a deadline go after
// MetadataRetention; rows with a deadline stay until it.
func TestMetadataMinimization(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		clock := fakeclock.New(time.Time{})
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) {
			o.Now = clock.Now
			o.MetadataRetention = time.Hour
		}))
		h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$old", "kept forever?")))
		timed := text("room", "$timed", "has a deadline")
		timed.Timer = 48 * time.Hour
		require.NoError(t, h.a.Receive(ctx, timed))
		h.b.WaitSent(2, 5*time.Second)
		waitQueueEmpty(t, h.router)
		var oldMsg, timedMsg bridge.MessageID
		require.NoError(t, h.db.QueryRow(ctx, `SELECT message_id FROM sb_message WHERE remote_id='$old'`).Scan(&oldMsg))
		require.NoError(t, h.db.QueryRow(ctx, `SELECT message_id FROM sb_message WHERE remote_id='$timed'`).Scan(&timedMsg))

		clock.Advance(59 * time.Minute)
		_, err := h.router.ExpireNow(ctx)
		require.NoError(t, err)
		m, _ := rowsOf(t, h, oldMsg)
		require.Equal(t, 2, m, "younger than metadata retention")

		clock.Advance(2 * time.Minute)
		_, err = h.router.ExpireNow(ctx)
		require.NoError(t, err)
		m, _ = rowsOf(t, h, oldMsg)
		require.Zero(t, m, "older than metadata retention")
		m, _ = rowsOf(t, h, timedMsg)
		require.Equal(t, 2, m, "a row with a deadline is what deletes its message later")

		clock.Advance(48 * time.Hour)
		n, err := h.router.ExpireNow(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		m, _ = rowsOf(t, h, timedMsg)
		require.Zero(t, m)
	})
}

// TestReceiptsAndDeletesAreMetadata: a read receipt or delete of an expiring
// message is not itself deleted on its network at the deadline (there is
// nothing there to delete); its row is metadata.
func TestReceiptsAndDeletesAreMetadata(t *testing.T) {
	// The clock is the test's: under load a wall-clock deadline could pass
	// before the receipt arrives.
	clock := fakeclock.New(time.Time{})
	h := startHarness(t, dbtest.SQLite(t), withOptions(func(o *bridge.Options) {
		o.Now = clock.Now
		o.RetentionPolicy = &bridge.RetentionPolicy{Default: time.Minute}
	}))
	h.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	require.NoError(t, h.a.Receive(ctx, text("room", "$m", "x")))
	sent := h.b.WaitSent(1, 5*time.Second)
	// The loopback records the send before the router commits the remote
	// ID: the receipt refers to it only once that is done.
	waitQueueEmpty(t, h.router)
	require.NoError(t, h.b.Receive(ctx, &bridge.Event{Kind: bridge.KindReadReceipt, Source: legB("chat"), SourceID: "rr-1", Target: sent[0].RemoteID}))
	var v *int64
	require.NoError(t, h.db.QueryRow(ctx, `SELECT expires_at FROM sb_message WHERE remote_id='rr-1'`).Scan(&v))
	require.Nil(t, v)
	waitQueueEmpty(t, h.router)
	clock.Advance(2 * time.Minute)
	_, err := h.router.ExpireNow(ctx)
	require.NoError(t, err)
	waitDelete(t, h.b, sent[0].RemoteID, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, s := range h.b.Sent() {
		require.NotEqual(t, bridge.RemoteID("rr-1"), s.Delivery.Target)
	}
}

// TestDedupeOutlivesExpiry: a source event redelivered after its message
// expired (its sb_message rows are gone) is still a duplicate — also when
// the admitter would refuse it now — until the redelivery horizon
// (MetadataRetention, 7 days when that is 0) has passed; then it is
// forgotten.
func TestDedupeOutlivesExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		clock := fakeclock.New(time.Time{})
		var refuse atomic.Bool
		admit := bridge.AdmitFunc(func(context.Context, *bridge.Admission) error {
			if refuse.Load() {
				return &bridge.RefusedError{Reason: "suspended"}
			}
			return nil
		})
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) {
			o.Now = clock.Now
			o.Admitter = admit
		}))
		h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		messages := func() []string {
			var out []string
			for _, s := range h.b.Sent() {
				if s.Kind == bridge.KindMessage {
					out = append(out, s.Delivery.Event.Content.Body)
				}
			}
			return out
		}
		event := func(id string) *bridge.Event {
			evt := text("room", id, "body of "+id)
			evt.Timer = time.Minute
			return evt
		}
		for _, id := range []string{"$plain", "$refused-now"} {
			require.NoError(t, h.a.Receive(ctx, event(id)))
		}
		sent := h.b.WaitSent(2, 5*time.Second)
		waitQueueEmpty(t, h.router)

		clock.Advance(2 * time.Minute)
		_, err := h.router.ExpireNow(ctx)
		require.NoError(t, err)
		for _, s := range sent {
			m, q := rowsOf(t, h, s.Delivery.Message)
			require.Zero(t, m+q, "the expired message's rows are gone")
		}

		for _, tc := range []struct {
			name, id string
			refused  bool
		}{
			{"redelivered", "$plain", false},
			{"redelivered while the sender is refused", "$refused-now", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				refuse.Store(tc.refused)
				defer refuse.Store(false)
				require.NoError(t, h.a.Receive(ctx, event(tc.id)), "a duplicate, not a refusal")
			})
		}
		waitQueueEmpty(t, h.router)
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, []string{"body of $plain", "body of $refused-now"}, messages(), "nothing delivered twice")
		require.Equal(t, float64(2), metricValue(h, "switchboard_messages_total", map[string]string{"network": "loopa", "direction": "in", "result": "duplicate"}))

		// Within the horizon, still a duplicate.
		clock.Advance(6 * 24 * time.Hour)
		_, err = h.router.ExpireNow(ctx)
		require.NoError(t, err)
		require.NoError(t, h.a.Receive(ctx, event("$plain")))
		waitQueueEmpty(t, h.router)
		require.Len(t, messages(), 2)

		// After it, forgotten: no row is left, and the event is new again.
		clock.Advance(2 * 24 * time.Hour)
		_, err = h.router.ExpireNow(ctx)
		require.NoError(t, err)
		var seen int
		require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM sb_seen`).Scan(&seen))
		require.Zero(t, seen, "seen hashes are purged after the horizon")
		require.NoError(t, h.a.Receive(ctx, event("$plain")))
		h.b.WaitSent(3, 5*time.Second) // two messages, their deletes, and this one
		require.Eventually(t, func() bool { return len(messages()) == 3 }, 5*time.Second, 10*time.Millisecond)
	})
}
