package bridge

import (
	"context"
	"fmt"
	"time"
)

// History: a network's earlier messages (WhatsApp's history sync, an
// on-demand backfill) submitted as KindMessage events with Event.History
// set. The router treats them as ordinary messages for durability (sealed
// queue rows, in order per leg, retried) and deduplication (the same
// source ID twice, or a message already bridged live, is dropped), with
// three differences:
//
//   - they go only to legs whose connector implements HistoryReceiver,
//     never to the others (an SMS contact never receives old WhatsApp
//     history); an event no leg can receive is dropped;
//   - their retention runs from their original timestamp: one already
//     past its conversation's effective retention is dropped before
//     anything is written, the others expire when a live message sent at
//     that time would;
//   - the admitter sees Event.History (the safety service does not
//     rate-limit history; blocks still apply).

// HistoryReceiver is a connector that can show earlier messages of another
// network in a chat, at their original time and without notifying anyone
// where its network allows (a Matrix portal). SendHistory delivers one
// history message (a KindMessage, text or media); its errors are treated
// as SendMessage's.
type HistoryReceiver interface {
	Connector
	SendHistory(ctx context.Context, d *Delivery) (RemoteID, error)
}

// receivesHistory reports whether leg's connector takes history.
func (r *Router) receivesHistory(leg Leg) bool {
	_, ok := r.connectors[leg.Network].(HistoryReceiver)
	return ok
}

// historyClock is the time a message's retention runs from: its original
// timestamp for history (never later than now), now for the rest.
func historyClock(evt *Event, now time.Time) time.Time {
	if evt.History && !evt.Timestamp.IsZero() && evt.Timestamp.Before(now) {
		return evt.Timestamp
	}
	return now
}

// keepHistory applies the history rules to an accept row whose deadline
// is expires: it keeps only the destinations that take history, and
// reports false (op.ignored set, nothing written) when none does or the
// message is already past its retention. It runs in the accept
// transaction carried by ctx.
func (r *Router) keepHistory(ctx context.Context, row *acceptRow, expires time.Time) (bool, error) {
	op, evt := row.op, row.op.evt
	dests := row.dests[:0:0]
	for _, d := range row.dests {
		if r.receivesHistory(d) && !op.excluded[d] {
			dests = append(dests, d)
		}
	}
	row.dests = dests
	expired := !expires.IsZero() && !expires.After(row.now)
	if len(dests) > 0 && !expired {
		return true, nil
	}
	op.ignored = true
	r.metrics.messages.WithLabelValues(string(evt.Source.Network), "in", "history_dropped").Inc()
	// messageExpiry may have recorded an after-read timer for it.
	if _, err := r.db.Exec(ctx, deleteReadTimerQuery, evt.Source.Network, evt.Source.Chat, evt.SourceID); err != nil {
		return false, fmt.Errorf("%w: drop history read timer: %w", ErrDatabase, err)
	}
	return false, nil
}
