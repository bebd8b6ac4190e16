package bridge

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// writeOp is one unit of work for the writer: fn, or accepts (one Submit,
// or a SubmitBatch in order), or a finished delivery; the writer hands a
// batch's accepts and finished deliveries to its batcher together, so that
// they share a few statements (batch.go). Each runs inside a shared
// transaction and returns only database errors (outcomes that are
// not database errors are recorded in the op itself, before any write).
// done runs after the transaction committed or failed.
type writeOp struct {
	fn      func(ctx context.Context) error
	accepts []*acceptOp
	finish  *finishOp
	done    func(err error)
}

// batcher runs the accepts and finished deliveries of one batch.
type batcher interface {
	acceptBatch(ctx context.Context, ops []*acceptOp) error
	finishBatch(ctx context.Context, ops []*finishOp) error
}

// writer batches writes from many goroutines into few transactions (group
// commit): the first op waiting opens a transaction, every op that arrives
// meanwhile joins the next one. If a batch fails, each op is retried alone so
// one bad op cannot fail the others.
type writer struct {
	db       *dbutil.Database
	log      zerolog.Logger
	batcher  batcher
	ops      chan *writeOp
	maxBatch int
	wg       sync.WaitGroup
	stop     chan struct{}
}

func newWriter(db *dbutil.Database, b batcher, log zerolog.Logger) *writer {
	return &writer{db: db, batcher: b, log: log, ops: make(chan *writeOp, 4096), maxBatch: 512, stop: make(chan struct{})}
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
	return w.doOp(ctx, &writeOp{fn: fn})
}

// doOp queues op (its done is set here) and waits for the commit.
func (w *writer) doOp(ctx context.Context, op *writeOp) error {
	result := make(chan error, 1)
	op.done = func(err error) { result <- err }
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

// doAsync queues op and returns; op.done runs after the commit. Once the
// writer is stopped, done gets ErrStopped.
func (w *writer) doAsync(op *writeOp) {
	select {
	case w.ops <- op:
	case <-w.stop:
		op.done(ErrStopped)
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
	err := w.txn(ctx, func(ctx context.Context) error { return w.apply(ctx, batch) })
	if err != nil && len(batch) > 1 {
		w.log.Warn().Err(err).Int("batch", len(batch)).Msg("Batched write failed, retrying ops one by one")
		for _, op := range batch {
			op.done(w.txn(ctx, func(ctx context.Context) error { return w.apply(ctx, []*writeOp{op}) }))
		}
		return
	}
	for _, op := range batch {
		op.done(err)
	}
}

// apply runs a batch inside its transaction: finished deliveries first
// (they are older than anything accepted now), then plain ops, then the
// accepts, each kind sharing its statements.
func (w *writer) apply(ctx context.Context, batch []*writeOp) error {
	var accepts []*acceptOp
	var finishes []*finishOp
	for _, op := range batch {
		switch {
		case op.accepts != nil:
			accepts = append(accepts, op.accepts...)
		case op.finish != nil:
			finishes = append(finishes, op.finish)
		}
	}
	if len(finishes) > 0 {
		if err := w.batcher.finishBatch(ctx, finishes); err != nil {
			return err
		}
	}
	for _, op := range batch {
		if op.fn != nil {
			if err := op.fn(ctx); err != nil {
				return err
			}
		}
	}
	if len(accepts) > 0 {
		return w.batcher.acceptBatch(ctx, accepts)
	}
	return nil
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
