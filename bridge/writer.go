package bridge

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// writeOp is one unit of work for the writer. fn runs inside a shared
// transaction and returns only database errors (outcomes that are not
// database errors are recorded in the op itself, before any write).
// done runs after the transaction committed or failed.
type writeOp struct {
	fn   func(ctx context.Context) error
	done func(err error)
}

// writer batches writes from many goroutines into few transactions (group
// commit): the first op waiting opens a transaction, every op that arrives
// meanwhile joins the next one. If a batch fails, each op is retried alone so
// one bad op cannot fail the others.
type writer struct {
	db       *dbutil.Database
	log      zerolog.Logger
	ops      chan *writeOp
	maxBatch int
	wg       sync.WaitGroup
	stop     chan struct{}
}

func newWriter(db *dbutil.Database, log zerolog.Logger) *writer {
	return &writer{db: db, log: log, ops: make(chan *writeOp, 4096), maxBatch: 512, stop: make(chan struct{})}
}

// start runs n batching loops. SQLite takes one writer at a time, so one
// loop is best there; PostgreSQL commits concurrent transactions in
// parallel, so several loops overlap their round trips.
func (w *writer) start(n int) {
	for i := 0; i < max(n, 1); i++ {
		w.wg.Add(1)
		go w.loop()
	}
}

// close stops the writer after it has run every op already submitted.
func (w *writer) close() {
	close(w.stop)
	w.wg.Wait()
}

// do runs fn in the next batch and waits for the commit.
func (w *writer) do(ctx context.Context, fn func(ctx context.Context) error) error {
	result := make(chan error, 1)
	op := &writeOp{fn: fn, done: func(err error) { result <- err }}
	select {
	case w.ops <- op:
	case <-w.stop:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the op runs even if ctx ends; wait for its outcome so
	// the caller never reports failure for something that was committed.
	return <-result
}

// doAsync queues fn and returns; done runs after the commit. Once the
// writer is stopped, done gets ErrStopped.
func (w *writer) doAsync(fn func(ctx context.Context) error, done func(err error)) {
	select {
	case w.ops <- &writeOp{fn: fn, done: done}:
	case <-w.stop:
		done(ErrStopped)
	}
}

func (w *writer) loop() {
	defer w.wg.Done()
	batch := make([]*writeOp, 0, w.maxBatch)
	for {
		select {
		case op := <-w.ops:
			batch = append(batch[:0], op)
		case <-w.stop:
			// Drain what was queued before stopping.
			for {
				select {
				case op := <-w.ops:
					w.run([]*writeOp{op})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op := <-w.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.run(batch)
	}
}

func (w *writer) run(batch []*writeOp) {
	// Background work: never tied to a request's context.
	ctx := w.log.WithContext(context.Background())
	err := w.txn(ctx, func(ctx context.Context) error {
		for _, op := range batch {
			if err := op.fn(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		w.log.Warn().Err(err).Int("batch", len(batch)).Msg("Batched write failed, retrying ops one by one")
		for _, op := range batch {
			op.done(w.txn(ctx, op.fn))
		}
		return
	}
	for _, op := range batch {
		op.done(err)
	}
}

// maxTxnTries bounds how often a transaction PostgreSQL aborted to break a
// deadlock (or a serialization conflict) is run again.
const maxTxnTries = 3

// txn runs fn in a transaction, running it again when PostgreSQL aborted
// it as a deadlock victim or for a serialization conflict: concurrent
// writers (several per process on PostgreSQL) may lock rows in different
// orders, and the victim's work is then simply redone.
func (w *writer) txn(ctx context.Context, fn func(ctx context.Context) error) error {
	var err error
	for try := 1; try <= maxTxnTries; try++ {
		if err = w.db.DoTxn(ctx, nil, fn); !retryableTxn(err) {
			return err
		}
		w.log.Debug().Err(err).Int("try", try).Msg("Transaction aborted by PostgreSQL, running it again")
	}
	return err
}

// retryableTxn reports whether PostgreSQL aborted a transaction that can
// simply be run again (deadlock_detected, serialization_failure).
func retryableTxn(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
