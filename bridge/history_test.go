package bridge_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// historyEvent is an earlier message of leg a's network, sent at ts.
func historyEvent(chat, id, body string, ts time.Time) *bridge.Event {
	evt := text(chat, id, body)
	evt.Source.Network = netA
	evt.Timestamp = ts
	evt.History = true
	return evt
}

// TestHistoryOnlyToHistoryReceiversWithinRetention: a history batch from
// leg a reaches the leg that takes history (c, a Matrix portal) in order
// and with its original timestamps, and never the leg that does not (b,
// an SMS contact); what is older than the conversation's retention is not
// written at all, and the rest expires from its original time.
func TestHistoryOnlyToHistoryReceiversWithinRetention(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		c := bridgetest.NewHistoryLoopback(netC)
		const keep = 30 * 24 * time.Hour
		h := startHarness(t, dbo, withConnector(c), withOptions(func(o *bridge.Options) {
			o.RetentionPolicy = &bridge.RetentionPolicy{Default: keep}
		}))
		legC := bridge.Leg{Network: netC, Chat: "chat"}
		h.conversation(legA("chat"), legB("chat"), legC)

		now := time.Now().Truncate(time.Millisecond)
		batch := []*bridge.Event{
			historyEvent("chat", "h-old", "too old", now.Add(-40*24*time.Hour)),
			historyEvent("chat", "h-1", "first", now.Add(-10*24*time.Hour)),
			historyEvent("chat", "h-2", "second", now.Add(-2*time.Hour)),
			historyEvent("chat", "h-3", "third", now.Add(-time.Hour)),
		}
		for i, err := range h.router.SubmitBatch(ctx, batch) {
			require.NoError(t, err, "event %d", i)
		}
		// A live message afterwards goes to both legs as usual.
		live := text("chat", "live-1", "live")
		live.Source.Network = netA
		require.NoError(t, h.router.Submit(ctx, live))
		waitQueueEmpty(t, h.router)

		sent := c.WaitSent(4, 5*time.Second)
		require.Equal(t, []string{"first", "second", "third", "live"}, bodies(sent))
		for i, s := range sent[:3] {
			require.True(t, s.Delivery.Event.History, "delivery %d is marked as history", i)
			require.True(t, s.Delivery.Event.Timestamp.Equal(batch[i+1].Timestamp), "delivery %d keeps its original time", i)
		}
		require.False(t, sent[3].Delivery.Event.History)
		require.Equal(t, []string{"live"}, bodies(h.b.Sent()), "the leg without history gets only the live message")

		// Nothing at all was written for the message past retention; the
		// kept ones expire from their original time.
		var n int
		require.NoError(t, h.db.QueryRow(ctx, `SELECT count(*) FROM sb_message WHERE remote_id='h-old'`).Scan(&n))
		require.Zero(t, n)
		var expires sql.NullInt64
		require.NoError(t, h.db.QueryRow(ctx, `SELECT expires_at FROM sb_message WHERE network=$1 AND remote_id='h-1'`, netA).Scan(&expires))
		require.Equal(t, batch[1].Timestamp.Add(keep).UnixMilli(), expires.Int64)

		// The same history again, and a live message seen again as
		// history, are not delivered twice.
		again := []*bridge.Event{
			historyEvent("chat", "h-1", "first", now.Add(-10*24*time.Hour)),
			historyEvent("chat", "h-3", "third", now.Add(-time.Hour)),
			historyEvent("chat", "live-1", "live", now.Add(-time.Minute)),
			historyEvent("chat", "h-4", "fourth", now.Add(-time.Minute)),
		}
		for i, err := range h.router.SubmitBatch(ctx, again) {
			require.NoError(t, err, "event %d", i)
		}
		waitQueueEmpty(t, h.router)
		sent = c.WaitSent(5, 5*time.Second)
		require.Equal(t, []string{"first", "second", "third", "live", "fourth"}, bodies(sent))
		require.Equal(t, []string{"live"}, bodies(h.b.Sent()))
	})
}

// TestHistoryWithoutReceiverWritesNothing: a conversation none of whose
// other legs takes history keeps nothing of it.
func TestHistoryWithoutReceiverWritesNothing(t *testing.T) {
	ctx := context.Background()
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("solo"), legB("solo"))
	require.NoError(t, h.router.Submit(ctx, historyEvent("solo", "h-1", "old", time.Now().Add(-time.Hour))))
	waitQueueEmpty(t, h.router)
	require.Empty(t, h.b.Sent())
	var n int
	require.NoError(t, h.db.QueryRow(ctx, `SELECT count(*) FROM sb_message`).Scan(&n))
	require.Zero(t, n)
}

// TestHistoryOnlyForMessages: only messages can be history.
func TestHistoryOnlyForMessages(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("x"), legB("x"))
	evt := historyEvent("x", "r-1", "", time.Now())
	evt.Kind, evt.Content, evt.Target, evt.Reaction = bridge.KindReaction, nil, "m-1", "👍"
	err := h.router.Submit(context.Background(), evt)
	require.True(t, errors.Is(err, bridge.ErrInvalidEvent), "got %v", err)
}

// TestHistoryExpiresFromItsOriginalTime: a history message whose
// retention, counted from its original time, ends a moment after it is
// accepted is delivered and then deleted from the leg, like any expired
// message.
func TestHistoryExpiresFromItsOriginalTime(t *testing.T) {
	ctx := context.Background()
	c := bridgetest.NewHistoryLoopback(netC)
	const keep = time.Hour
	h := startHarness(t, dbtest.SQLite(t), withConnector(c), withOptions(func(o *bridge.Options) {
		o.RetentionPolicy = &bridge.RetentionPolicy{Default: keep}
	}))
	h.conversation(legA("exp"), bridge.Leg{Network: netC, Chat: "exp"})
	sentAt := time.Now().Add(-keep + 2*time.Second)
	require.NoError(t, h.router.Submit(ctx, historyEvent("exp", "h-exp", "almost expired", sentAt)))
	sent := c.WaitSent(2, 15*time.Second)
	require.Len(t, sent, 2, "delivered, then deleted")
	require.Equal(t, bridge.KindMessage, sent[0].Kind)
	require.Equal(t, bridge.KindDelete, sent[1].Kind)
	require.Equal(t, sent[0].RemoteID, sent[1].Delivery.Target)
	require.WithinDuration(t, sentAt.Add(keep), sent[1].At, 5*time.Second)
}
