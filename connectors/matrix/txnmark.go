package matrix

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// txnMarkLinger is how long an acknowledged transaction's ID may wait in
// memory before it is written, so one commit records many transactions.
const txnMarkLinger = 50 * time.Millisecond

// maxRecentTxns bounds the acknowledged transaction IDs kept in memory.
const maxRecentTxns = 4096

// maxPendingTxns bounds the IDs waiting to be written while the database
// fails; older ones are dropped (see txnMarks).
const maxPendingTxns = 10000

// txnMarkChunk is how many IDs one INSERT writes.
const txnMarkChunk = 200

// txnMarks records the IDs of acknowledged transactions, so a transaction
// the homeserver sends again is answered without handling its events
// again. An ID is remembered in memory at once and written to
// sb_matrix_txn in batches, off the acknowledgement's path: one commit
// per transaction was as costly as the transaction's own events.
//
// Nothing depends on the row for correctness: every effect of an event is
// deduplicated on its own (the router by source event ID, side effects by
// claims), so a replay whose row was not written yet (after a crash, or
// at another process) is handled again without a second effect, as it
// was when writing the row failed.
//
// The table is read only until the horizon is known (see txnSeen).
type txnMarks struct {
	mu      sync.Mutex
	recent  map[string]struct{}
	ring    []string
	next    int
	pending []pendingTxn
	kick    chan struct{}
	// horizon: this process received a transaction sb_matrix_txn did not
	// know; every transaction acknowledged before it is behind the
	// homeserver, and only those of this process can come again.
	horizon bool
}

type pendingTxn struct {
	id string
	at int64
}

func newTxnMarks() *txnMarks {
	return &txnMarks{recent: make(map[string]struct{}), ring: make([]string, maxRecentTxns), kick: make(chan struct{}, 1)}
}

// seen reports whether this process acknowledged txnID recently, and
// whether the horizon is known (then memory is the whole answer).
func (m *txnMarks) seen(txnID string) (seen, horizon bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.recent[txnID]
	return ok, m.horizon
}

// setHorizon records that a transaction sb_matrix_txn did not know arrived.
func (m *txnMarks) setHorizon() {
	m.mu.Lock()
	m.horizon = true
	m.mu.Unlock()
}

// add remembers txnID and queues it to be written.
func (m *txnMarks) add(txnID string, now time.Time) {
	m.mu.Lock()
	if _, ok := m.recent[txnID]; !ok {
		if old := m.ring[m.next]; old != "" {
			delete(m.recent, old)
		}
		m.ring[m.next] = txnID
		m.next = (m.next + 1) % len(m.ring)
		m.recent[txnID] = struct{}{}
	}
	if len(m.pending) >= maxPendingTxns {
		m.pending = m.pending[1:]
	}
	m.pending = append(m.pending, pendingTxn{id: txnID, at: ms(now)})
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// take returns the IDs waiting to be written and forgets them.
func (m *txnMarks) take() []pendingTxn {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.pending
	m.pending = nil
	return out
}

// requeue puts back IDs whose write failed, before those added since.
func (m *txnMarks) requeue(ids []pendingTxn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(ids, m.pending...)
	if over := len(m.pending) - maxPendingTxns; over > 0 {
		m.pending = m.pending[over:]
	}
}

// txnSeen reports whether a transaction was acknowledged before: by this
// process lately, or by any process as far as sb_matrix_txn tells.
//
// The table is read until the first transaction it does not know. A
// homeserver sends an appservice one transaction at a time, the next only
// once the one before was acknowledged, and sends again only the one it
// awaits an answer for (Matrix application service API, "Pushing
// events"). So once a transaction arrives that no process acknowledged,
// every earlier one is behind the homeserver for good, and a repeat can
// only be of a transaction this process received since: one it remembers
// (the last maxRecentTxns) or one it never acknowledged, which is new.
// A restart reads the table again, for the repeat of the transaction
// acknowledged just before it. A repeat answered from memory wrongly (a
// homeserver breaking that order) is still deduplicated per event by the
// router and per side effect by its claim, as when the row was not
// written yet.
func (c *Connector) txnSeen(ctx context.Context, txnID string) (bool, error) {
	seen, horizon := c.txns.seen(txnID)
	if seen || horizon {
		return seen, nil
	}
	seen, err := c.exists(ctx, txnSeenQuery, txnID)
	if err == nil && !seen {
		c.txns.setHorizon()
	}
	return seen, err
}

// markTxn records an acknowledged transaction (see txnMarks).
func (c *Connector) markTxn(txnID string) {
	c.txns.add(txnID, time.Now())
}

// txnMarkLoop writes acknowledged transaction IDs until ctx ends, then
// writes what is left (Stop waits for it).
func (c *Connector) txnMarkLoop(ctx context.Context) {
	defer c.bg.Done()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			c.flushTxnMarks(fctx)
			cancel()
			return
		case <-c.txns.kick:
		}
		select {
		case <-ctx.Done():
		case <-time.After(txnMarkLinger):
		}
		c.flushTxnMarks(ctx)
	}
}

// flushTxnMarks writes the waiting IDs, in chunks of one statement each,
// in one transaction.
func (c *Connector) flushTxnMarks(ctx context.Context) {
	ids := c.txns.take()
	if len(ids) == 0 {
		return
	}
	err := c.db.DoTxn(context.WithoutCancel(ctx), nil, func(ctx context.Context) error {
		for start := 0; start < len(ids); start += txnMarkChunk {
			chunk := ids[start:min(start+txnMarkChunk, len(ids))]
			var q strings.Builder
			q.WriteString(`INSERT INTO sb_matrix_txn (txn_id, received_at) VALUES `)
			args := make([]any, 0, 2*len(chunk))
			for i, t := range chunk {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString("($")
				q.WriteString(strconv.Itoa(2*i + 1))
				q.WriteString(",$")
				q.WriteString(strconv.Itoa(2*i + 2))
				q.WriteByte(')')
				args = append(args, t.id, t.at)
			}
			q.WriteString(` ON CONFLICT (txn_id) DO NOTHING`)
			if _, err := c.db.Exec(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.txns.requeue(ids)
		c.log.Warn().Err(err).Int("transactions", len(ids)).Msg("Failed to record handled transactions; retrying later")
	}
}
