package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/database"
)

// Expiry deletes messages whose retention ended, and mapping rows older than
// Options.MetadataRetention.
//
// Every copy of a message (one sb_message row per leg) carries the deadline
// computed when the message was accepted, so a copy is handled on its own:
// at its deadline the scheduler deletes it on its leg (MessageExpirer, else
// DeleteSender; a leg that can do neither, such as SMS, is skipped), then
// deletes the row, and any queue rows whose deadline passed, in one
// transaction. A copy recorded after its deadline (delivered while the
// sweep ran) is due at once and goes in the next sweep.
//
// The scheduler sleeps until the nearest deadline (one indexed MIN query),
// at most PollInterval so that rows written by other processes or late
// deliveries are noticed, and is woken early when an accept inserts an
// earlier deadline. A sweep reads due rows with
//
//	WHERE expires_at IS NOT NULL AND expires_at <= $now ORDER BY expires_at LIMIT n
//
// on the partial index sb_message_expiry_idx, so its work is proportional to
// what expired, never to the table. On SQLite (secure_delete on) each sweep
// that deleted rows ends with a TRUNCATE checkpoint so the deleted rows leave
// the -wal file too. PostgreSQL marks deleted tuples dead and leaves them in
// the heap until VACUUM reclaims the space: autovacuum does that eventually,
// and an operator who needs a bound runs VACUUM on sb_message and sb_queue
// (a plain VACUUM makes the space reusable; only VACUUM FULL rewrites the
// file). PostgreSQL's WAL also holds the rows until it is recycled.
//
// Metadata minimization deletes sb_message rows without a deadline that are
// older than MetadataRetention. They say which chats exchanged a message
// when, and hold no content. Rows with a deadline are left alone: their
// message still exists on the legs, and the row is what lets the scheduler
// delete it there; it goes at its deadline. The price of forgetting a row is
// that a reply, edit, reaction or delete of an older message is no longer
// translated (a reply arrives as a plain message, the others are refused),
// and a network redelivering an event older than MetadataRetention is no
// longer recognised as a duplicate; keep MetadataRetention above any
// network's redelivery window. Undelivered queue rows are left to the
// delivery workers, which finish or give up within MaxAttempts.
//
// Dedupe outlives expiry. The router recognises a redelivered source event
// (a webhook retried, a transaction sent again) by its sb_message row, which
// expiry deletes with the message. So each copy the purge deletes leaves,
// in the same transaction, a keyed hash of its (network, chat, remote ID)
// in sb_seen (HMAC-SHA256 under a key derived from the bridge secret: no
// content, no raw ID), which accept checks before anything else. A hash is
// kept for the redelivery horizon after the expiry: MetadataRetention, or
// seenHorizonDefault (7 days) when metadata is kept; so every accepted
// event is recognised for at least MetadataRetention, whether its message
// expired or not. forget_at is rounded up to the hour, so the table does
// not tell exactly when a message expired; hashes past it are purged
// about every horizon/24 (at most hourly) and by ExpireNow.

// SQL of the expiry scheduler.
const (
	expiryDueQuery = `
		SELECT network, chat_id, remote_id, message_id, conversation_id, expires_at FROM sb_message
		WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2`
	expiryNextQuery   = `SELECT MIN(expires_at) FROM sb_message WHERE expires_at IS NOT NULL`
	expiryQueueQuery  = `DELETE FROM sb_queue WHERE expires_at IS NOT NULL AND expires_at <= $1`
	anyReadTimerQuery = `SELECT 1 FROM sb_read_timer LIMIT 1`
	expiryRetryQuery  = `UPDATE sb_message SET expires_at=$4 WHERE network=$1 AND chat_id=$2 AND remote_id=$3`
	// Copies of unread messages of after-read conversations (a
	// sb_read_timer row on the source copy) are not metadata: they are
	// what deletes the message once read.
	metadataQuery = `
		DELETE FROM sb_message WHERE (network, chat_id, remote_id) IN (
			SELECT m.network, m.chat_id, m.remote_id FROM sb_message m
			WHERE m.expires_at IS NULL AND m.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM sb_message s JOIN sb_read_timer t
				ON t.network = s.network AND t.chat_id = s.chat_id AND t.remote_id = s.remote_id
				WHERE s.message_id = m.message_id)
			LIMIT $2)`
)

const (
	// expiryBatch is how many rows one purge transaction handles.
	expiryBatch = 5000
	// expiryParallel bounds concurrent deletes sent to networks.
	expiryParallel = 8
	// expiryAttempts is how often a transiently failing delete is tried.
	expiryAttempts = 5
	// deleteKeyRows bounds the rows of one DELETE ... IN (VALUES ...).
	deleteKeyRows = 300
	// seenHorizonDefault is how long a seen hash outlives its expired
	// message when MetadataRetention is 0 (metadata kept).
	seenHorizonDefault = 7 * 24 * time.Hour
)

// seenHorizon is how long the hash of an expired copy is kept (see above).
func (r *Router) seenHorizon() time.Duration {
	if keep := r.opts.MetadataRetention; keep > 0 {
		return keep
	}
	return seenHorizonDefault
}

// seenForgetAt is when hashes written now are forgotten: the horizon,
// rounded up to the hour.
func (r *Router) seenForgetAt(now time.Time) time.Time {
	t := now.Add(r.seenHorizon())
	if rounded := t.Truncate(time.Hour); rounded.Before(t) {
		return rounded.Add(time.Hour)
	}
	return t
}

// expiredCopy is one copy of a message on one leg whose deadline passed.
type expiredCopy struct {
	leg     Leg
	remote  RemoteID
	msg     MessageID
	conv    ConversationID
	expires int64
}

type copyKey struct {
	leg    Leg
	remote RemoteID
}

// expirer is the background scheduler; see the comment above.
type expirer struct {
	r    *Router
	log  zerolog.Logger
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	// swept is closed when the first sweep (overdue work) has run.
	swept   chan struct{}
	expired *prometheus.CounterVec
	// sweeping serializes sweeps (the loop's and ExpireNow's).
	sweeping sync.Mutex

	mu sync.Mutex
	// next is the deadline the loop sleeps until (zero: none known).
	next time.Time
	// attempts counts failed deletes of copies that are being retried.
	attempts map[copyKey]int
}

// startExpiry starts the scheduler; its first sweep handles overdue rows.
// It runs on its own context, never a request's.
func (r *Router) startExpiry() {
	e := &expirer{
		r:        r,
		log:      r.log.With().Str("component", "expiry").Logger(),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		swept:    make(chan struct{}),
		attempts: make(map[copyKey]int),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard",
			Name:      "expired_messages_total",
			Help:      "Message copies whose retention ended, by network and result (deleted, skipped: the network cannot delete, failed).",
		}, []string{"network", "result"}),
	}
	if r.opts.Registerer != nil {
		if err := r.opts.Registerer.Register(e.expired); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				e.expired = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	r.expiry = e
	go e.run()
}

// stopExpiry stops the scheduler and waits for the running sweep.
func (r *Router) stopExpiry() {
	if r.expiry != nil {
		close(r.expiry.stop)
		<-r.expiry.done
	}
}

// noteExpiry tells the scheduler about a new deadline; it wakes early if the
// deadline is nearer than the one it sleeps until.
func (r *Router) noteExpiry(t time.Time) {
	if r.expiry != nil && !t.IsZero() {
		r.expiry.note(t)
	}
}

func (e *expirer) note(t time.Time) {
	e.mu.Lock()
	earlier := e.next.IsZero() || t.Before(e.next)
	if earlier {
		e.next = t
	}
	e.mu.Unlock()
	if earlier {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *expirer) run() {
	defer close(e.done)
	ctx, cancel := context.WithCancel(e.log.WithContext(context.Background()))
	defer cancel()
	go func() {
		select {
		case <-e.stop:
			cancel()
		case <-e.done:
		}
	}()
	var nextMetadata, nextSeen time.Time
	for first := true; ; first = false {
		if _, err := e.sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Error().Err(err).Msg("Expiry sweep failed")
		}
		if first {
			close(e.swept)
		}
		if keep := e.r.opts.MetadataRetention; keep > 0 && !e.r.now().Before(nextMetadata) {
			if _, err := e.purgeMetadata(ctx, e.r.now().Add(-keep)); err != nil && ctx.Err() == nil {
				e.log.Error().Err(err).Msg("Metadata purge failed")
			}
			nextMetadata = e.r.now().Add(min(max(keep/24, time.Second), time.Hour))
		}
		if !e.r.now().Before(nextSeen) {
			if _, err := e.purgeSeen(ctx); err != nil && ctx.Err() == nil {
				e.log.Error().Err(err).Msg("Purge of seen event hashes failed")
			}
			nextSeen = e.r.now().Add(min(max(e.r.seenHorizon()/24, time.Second), time.Hour))
		}
		wait := e.r.opts.PollInterval
		next, err := e.nextDeadline(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error().Err(err).Msg("Failed to read the next expiry deadline")
		}
		if !next.IsZero() {
			wait = min(wait, next.Sub(e.r.now()))
		}
		e.mu.Lock()
		e.next = next
		e.mu.Unlock()
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-timer.C:
		case <-e.wake:
			timer.Stop()
		case <-e.stop:
			timer.Stop()
			return
		}
	}
}

func (e *expirer) nextDeadline(ctx context.Context) (time.Time, error) {
	var next *int64
	if err := e.r.db.QueryRow(ctx, expiryNextQuery).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return time.UnixMilli(*next), nil
}

// sweep purges everything due now, batch by batch, and returns how many
// message copies it removed.
func (e *expirer) sweep(ctx context.Context) (int, error) {
	e.sweeping.Lock()
	defer e.sweeping.Unlock()
	now := ms(e.r.now())
	res, err := e.r.db.Exec(ctx, expiryQueueQuery, now)
	if err != nil {
		return 0, fmt.Errorf("%w: purge expired queue rows: %w", ErrDatabase, err)
	}
	queued, _ := res.RowsAffected()
	total := 0
	for {
		due, err := e.due(ctx, now)
		if err != nil {
			return total, err
		}
		if len(due) == 0 {
			break
		}
		done, retry := e.deleteRemote(ctx, due)
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		if err = e.purge(ctx, done, retry); err != nil {
			return total, err
		}
		total += len(done)
		if len(due) < expiryBatch {
			break
		}
	}
	if total > 0 || queued > 0 {
		e.log.Debug().Int("copies", total).Int64("queued", queued).Msg("Purged expired messages")
		if err = database.Checkpoint(ctx, e.r.db); err != nil {
			e.log.Warn().Err(err).Msg("Checkpoint after purge failed")
		}
	}
	return total, nil
}

func (e *expirer) due(ctx context.Context, now int64) ([]expiredCopy, error) {
	rows, err := e.r.db.Query(ctx, expiryDueQuery, now, expiryBatch)
	if err != nil {
		return nil, fmt.Errorf("%w: read expired messages: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var out []expiredCopy
	for rows.Next() {
		var c expiredCopy
		if err = rows.Scan(&c.leg.Network, &c.leg.Chat, &c.remote, &c.msg, &c.conv, &c.expires); err != nil {
			return nil, fmt.Errorf("%w: read expired messages: %w", ErrDatabase, err)
		}
		out = append(out, c)
	}
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read expired messages: %w", ErrDatabase, err)
	}
	return out, nil
}

// deleteRemote deletes each copy on its leg, in parallel. It returns the
// copies whose rows can go and those to try again later.
func (e *expirer) deleteRemote(ctx context.Context, due []expiredCopy) (done, retry []expiredCopy) {
	type result struct {
		c     expiredCopy
		again bool
	}
	results := make([]result, len(due))
	sem := make(chan struct{}, expiryParallel)
	var wg sync.WaitGroup
	for i, c := range due {
		results[i].c = c
		conn, ok := e.r.connectors[c.leg.Network]
		if !ok {
			// Not served by this process (or a benchmark's synthetic rows):
			// nothing to delete remotely.
			continue
		}
		exp, canExpire := conn.(MessageExpirer)
		del, canDelete := conn.(DeleteSender)
		if !canExpire && !canDelete {
			e.expired.WithLabelValues(string(c.leg.Network), "skipped").Inc()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(ctx, min(e.r.opts.SendTimeout, 30*time.Second))
			defer cancel()
			err := safeCall(e.r, c.leg.Network, "expire", func() error {
				if canExpire {
					return exp.ExpireMessage(sctx, c.leg.Chat, c.remote)
				}
				return del.SendDelete(sctx, &Delivery{
					ID:           DeliveryID(newID("x_")),
					Conversation: c.conv,
					Message:      c.msg,
					Chat:         c.leg.Chat,
					Event:        &Event{Kind: KindDelete, Source: c.leg, SourceID: "expiry:" + c.remote, Target: c.remote, Timestamp: e.r.now()},
					Target:       c.remote,
					Attempt:      1,
					router:       e.r,
				})
			})
			results[i].again = e.outcome(c, err)
		}()
	}
	wg.Wait()
	for _, res := range results {
		if res.again {
			retry = append(retry, res.c)
		} else {
			done = append(done, res.c)
		}
	}
	return done, retry
}

// outcome logs a delete's result and says whether to try it again.
func (e *expirer) outcome(c expiredCopy, err error) (again bool) {
	network := string(c.leg.Network)
	key := copyKey{c.leg, c.remote}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.attempts, key)
		e.expired.WithLabelValues(network, "deleted").Inc()
		return false
	}
	log := e.log.With().Str("network", network).Str("message", string(c.msg)).Logger()
	switch {
	case errors.Is(err, ErrNotSupported):
		e.expired.WithLabelValues(network, "skipped").Inc()
		log.Debug().Err(err).Msg("Network cannot delete the expired message")
	case errors.Is(err, ErrPermanent) || e.attempts[key]+1 >= expiryAttempts:
		delete(e.attempts, key)
		e.expired.WithLabelValues(network, "failed").Inc()
		log.Error().Err(err).Msg("Failed to delete an expired message on its network; forgetting it")
	default:
		e.attempts[key]++
		log.Warn().Err(err).Int("attempt", e.attempts[key]).Msg("Failed to delete an expired message; will retry")
		return true
	}
	return false
}

// purge deletes the rows of done copies, leaving their keyed hashes in
// sb_seen, and pushes back the deadline of the ones to retry, in one
// transaction.
func (e *expirer) purge(ctx context.Context, done, retry []expiredCopy) error {
	forgetAt := ms(e.r.seenForgetAt(e.r.now()))
	err := e.r.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		tables := []string{"sb_message"}
		var one int
		if err := e.r.db.QueryRow(ctx, anyReadTimerQuery).Scan(&one); err == nil {
			tables = append(tables, "sb_read_timer")
		} else if !errors.Is(err, sqlNoRows) {
			return err
		}
		for start := 0; start < len(done); start += deleteKeyRows {
			chunk := done[start:min(start+deleteKeyRows, len(done))]
			for _, table := range tables {
				query, args := deleteCopiesQuery(e.r.db.Dialect, table, chunk)
				if _, err := e.r.db.Exec(ctx, query, args...); err != nil {
					return err
				}
			}
			query, args := insertSeenQuery(e.r.seal, chunk, forgetAt)
			if _, err := e.r.db.Exec(ctx, query, args...); err != nil {
				return err
			}
		}
		for _, c := range retry {
			e.mu.Lock()
			n := e.attempts[copyKey{c.leg, c.remote}]
			e.mu.Unlock()
			next := ms(e.r.now()) + (time.Second << (n - 1)).Milliseconds()
			if _, err := e.r.db.Exec(ctx, expiryRetryQuery, c.leg.Network, c.leg.Chat, c.remote, next); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: purge expired messages: %w", ErrDatabase, err)
	}
	return nil
}

// deleteCopiesQuery deletes the rows of copies from a table keyed by
// (network, chat_id, remote_id): sb_message or sb_read_timer.
func deleteCopiesQuery(dialect dbutil.Dialect, table string, copies []expiredCopy) (string, []any) {
	var b strings.Builder
	b.WriteString("DELETE FROM " + table + " WHERE (network, chat_id, remote_id) IN (VALUES ")
	args := make([]any, 0, 3*len(copies))
	for i, c := range copies {
		if i > 0 {
			b.WriteString(", ")
		}
		n := 3 * i
		if dialect == dbutil.Postgres {
			fmt.Fprintf(&b, "($%d::text, $%d::text, $%d::text)", n+1, n+2, n+3)
		} else {
			fmt.Fprintf(&b, "($%d, $%d, $%d)", n+1, n+2, n+3)
		}
		args = append(args, c.leg.Network, c.leg.Chat, c.remote)
	}
	b.WriteString(")")
	return b.String(), args
}

// insertSeenQuery records the keyed hashes of expired copies until
// forgetAt (a later forgetAt wins over an earlier one).
func insertSeenQuery(s *sealer, copies []expiredCopy, forgetAt int64) (string, []any) {
	var b strings.Builder
	b.WriteString("INSERT INTO sb_seen (hash, forget_at) VALUES ")
	args := make([]any, 1, 1+len(copies))
	args[0] = forgetAt
	for i, c := range copies {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d, $1)", i+2)
		args = append(args, s.seenHash(c.leg, c.remote))
	}
	b.WriteString(" ON CONFLICT (hash) DO UPDATE SET forget_at=excluded.forget_at WHERE sb_seen.forget_at < excluded.forget_at")
	return b.String(), args
}

// purgeSeen forgets seen hashes past their horizon.
func (e *expirer) purgeSeen(ctx context.Context) (int64, error) {
	res, err := e.r.db.Exec(ctx, purgeSeenQuery, ms(e.r.now()))
	if err != nil {
		return 0, fmt.Errorf("%w: purge seen event hashes: %w", ErrDatabase, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		e.log.Debug().Int64("rows", n).Msg("Forgot seen event hashes past the redelivery horizon")
	}
	return n, nil
}

// purgeMetadata deletes mapping rows without a deadline created before
// cutoff, batch by batch.
func (e *expirer) purgeMetadata(ctx context.Context, cutoff time.Time) (int64, error) {
	e.sweeping.Lock()
	defer e.sweeping.Unlock()
	var total int64
	for {
		res, err := e.r.db.Exec(ctx, metadataQuery, ms(cutoff), expiryBatch)
		if err != nil {
			return total, fmt.Errorf("%w: purge metadata: %w", ErrDatabase, err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < expiryBatch {
			break
		}
	}
	if total > 0 {
		e.log.Debug().Int64("rows", total).Msg("Purged old message metadata")
		if err := database.Checkpoint(ctx, e.r.db); err != nil {
			e.log.Warn().Err(err).Msg("Checkpoint after metadata purge failed")
		}
	}
	return total, nil
}

// ExpireNow runs one expiry sweep, one purge of seen hashes past the
// redelivery horizon (and, if MetadataRetention is set, one metadata purge)
// at once and returns how many message copies it removed. The scheduler
// does this by itself; tools and tests call it directly.
func (r *Router) ExpireNow(ctx context.Context) (int, error) {
	e := r.expiry
	if e == nil {
		return 0, ErrStopped
	}
	n, err := e.sweep(ctx)
	if err != nil {
		return n, err
	}
	if _, err = e.purgeSeen(ctx); err != nil {
		return n, err
	}
	if keep := r.opts.MetadataRetention; keep > 0 {
		_, err = e.purgeMetadata(ctx, r.now().Add(-keep))
	}
	return n, err
}
