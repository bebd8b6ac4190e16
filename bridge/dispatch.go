package bridge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

var sqlNoRows = sql.ErrNoRows

// lane holds the queued deliveries of one destination leg that this process
// owns, in sequence order. One worker at a time works on a lane, so each
// leg receives its messages in the order they were accepted.
type lane struct {
	key       laneKey
	items     []*item // waiting, sorted by seq
	inflight  *item   // being delivered by a worker
	held      map[int64]struct{}
	scheduled bool // in the ready queue or held by a worker
	timer     *time.Timer
	// foreignSeen is the highest foreign_seq already loaded for this lane.
	foreignSeen int64
}

// dispatcher hands lanes with due work to workers.
type dispatcher struct {
	r      *Router
	mu     sync.Mutex
	cond   *sync.Cond
	lanes  map[laneKey]*lane
	ready  []*lane
	leases map[laneKey]time.Time // lanes this process holds, and until when
	done   bool
	wg     sync.WaitGroup
	depth  int
	// incoming holds seqs this process inserted and will push itself once
	// their transaction commits; a reload of the lane must not take them.
	incoming map[int64]struct{}
	// multiProcess is true on PostgreSQL, where other processes may queue
	// rows for lanes this process holds.
	multiProcess bool
}

func newDispatcher(r *Router) *dispatcher {
	d := &dispatcher{r: r, lanes: make(map[laneKey]*lane), leases: make(map[laneKey]time.Time), incoming: make(map[int64]struct{})}
	d.multiProcess = r.db.Dialect != dbutil.SQLite
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *dispatcher) start(workers int) {
	for i := 0; i < workers; i++ {
		d.wg.Add(1)
		go d.worker()
	}
}

// stop lets workers finish their current delivery and exit.
func (d *dispatcher) stop() {
	d.halt()
	d.wg.Wait()
}

// halt tells workers to start no further delivery; it does not wait.
func (d *dispatcher) halt() {
	d.mu.Lock()
	d.done = true
	for _, l := range d.lanes {
		if l.timer != nil {
			l.timer.Stop()
		}
	}
	d.cond.Broadcast()
	d.mu.Unlock()
}

func (d *dispatcher) markLeased(keys []laneKey, now time.Time) {
	if len(keys) == 0 {
		return
	}
	d.mu.Lock()
	for _, k := range keys {
		d.leases[k] = now.Add(d.r.opts.Lease)
	}
	d.mu.Unlock()
}

// push adds accepted or recovered items to their lanes, keeping each lane
// sorted and skipping rows it already holds.
func (d *dispatcher) push(items []*item) {
	if len(items) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range items {
		l := d.lanes[it.lane]
		if l == nil {
			l = &lane{key: it.lane, held: make(map[int64]struct{})}
			d.lanes[it.lane] = l
		}
		if _, ok := l.held[it.seq]; ok {
			continue
		}
		if _, ok := d.incoming[it.seq]; ok && it.loaded {
			continue // its accept will push it
		}
		l.held[it.seq] = struct{}{}
		i := len(l.items)
		for i > 0 && l.items[i-1].seq > it.seq {
			i--
		}
		l.items = slices.Insert(l.items, i, it)
		d.depth++
		if !l.scheduled && l.timer == nil {
			d.schedule(l)
		}
	}
	d.r.metrics.queueDepth.Set(float64(d.depth))
}

// reserve marks seqs as pushed by their accept; unreserve ends that.
func (d *dispatcher) reserve(seqs ...int64) {
	d.mu.Lock()
	for _, s := range seqs {
		d.incoming[s] = struct{}{}
	}
	d.mu.Unlock()
}

func (d *dispatcher) unreserve(seqs []int64) {
	if len(seqs) == 0 {
		return
	}
	d.mu.Lock()
	for _, s := range seqs {
		delete(d.incoming, s)
	}
	d.mu.Unlock()
}

// noteForeign records that rows up to foreign were loaded for a lane.
func (d *dispatcher) noteForeign(key laneKey, foreign int64) {
	d.mu.Lock()
	if l := d.lanes[key]; l != nil && foreign > l.foreignSeen {
		l.foreignSeen = foreign
	}
	d.mu.Unlock()
}

// schedule puts a lane in the ready queue. d.mu must be held.
func (d *dispatcher) schedule(l *lane) {
	l.scheduled = true
	d.ready = append(d.ready, l)
	d.cond.Signal()
}

func (d *dispatcher) next() *lane {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.ready) == 0 && !d.done {
		d.cond.Wait()
	}
	if d.done {
		return nil
	}
	l := d.ready[0]
	d.ready[0] = nil
	d.ready = d.ready[1:]
	return l
}

const laneBurst = 64

func (d *dispatcher) worker() {
	defer d.wg.Done()
	for {
		l := d.next()
		if l == nil {
			return
		}
		d.work(l)
	}
}

// work delivers up to laneBurst items of a lane, in order, then yields.
func (d *dispatcher) work(l *lane) {
	for n := 0; ; n++ {
		d.mu.Lock()
		if d.done {
			l.scheduled = false
			d.mu.Unlock()
			return
		}
		if len(l.items) == 0 {
			l.scheduled = false
			if len(l.held) == 0 && l.foreignSeen == 0 {
				delete(d.lanes, l.key)
			}
			d.mu.Unlock()
			return
		}
		if n >= laneBurst {
			d.ready = append(d.ready, l) // stay scheduled; let other lanes run
			d.cond.Signal()
			d.mu.Unlock()
			return
		}
		it := l.items[0]
		now := d.r.now()
		if wait := it.nextAt.Sub(now); wait > 0 {
			l.scheduled = false
			l.timer = time.AfterFunc(wait, func() {
				d.mu.Lock()
				defer d.mu.Unlock()
				l.timer = nil
				if !d.done && !l.scheduled {
					d.schedule(l)
				}
			})
			d.mu.Unlock()
			return
		}
		l.items = l.items[1:]
		l.inflight = it
		d.mu.Unlock()

		finished := d.r.deliver(it)
		d.mu.Lock()
		l.inflight = nil
		if !finished {
			l.items = slices.Insert(l.items, 0, it) // retry: stays at the head
		}
		d.mu.Unlock()
	}
}

// release forgets a finished item once its queue row is deleted. Until
// then the lane keeps holding it, so a concurrent reload of the lane cannot
// deliver it a second time.
func (d *dispatcher) release(it *item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.depth--
	d.r.metrics.queueDepth.Set(float64(d.depth))
	l := d.lanes[it.lane]
	if l == nil {
		return
	}
	delete(l.held, it.seq)
	if len(l.held) == 0 && len(l.items) == 0 && !l.scheduled && l.timer == nil && l.foreignSeen == 0 {
		delete(d.lanes, l.key)
	}
}

// deliver attempts one delivery. It returns true when the item is finished
// (delivered or failed for good) and false when it was rescheduled.
func (r *Router) deliver(it *item) (finished bool) {
	if it.loaded {
		var one int
		err := r.db.QueryRow(context.Background(), queuedQuery, it.seq).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			r.disp.release(it) // finished before it was loaded again
			return true
		}
		it.loaded = false
	}
	// The delivery's fields are added to each line logged (deliveryFields),
	// not copied into a sub-logger's context for every delivery.
	log := r.log.Hook(&deliveryFields{conv: it.conv, msg: it.msg, network: it.lane.Network, seq: it.seq})
	ctx := log.WithContext(context.Background())
	it.attempts++

	plain, err := r.seal.open(it.payload, payloadAD(it.lane, it.msg))
	var q queuedEvent
	if err == nil {
		err = json.Unmarshal(plain, &q)
		clear(plain)
	}
	if err != nil || q.Event == nil {
		log.Error().Err(err).Msg("Queued payload cannot be opened; dropping it")
		r.finish(ctx, it, "", nil, Permanent(fmt.Errorf("%w: unreadable queue payload", ErrSeal)), nil)
		return true
	}
	remote, hooks, err := r.sendAbortable(ctx, it, &q)
	if err != nil && r.sendCtx.Err() != nil {
		// Stop cancelled it: not an attempt, not reported; the row stays
		// queued as it was for the next start.
		it.attempts--
		log.Info().Err(err).Msg("Delivery interrupted by shutdown; it stays queued")
		return false
	}
	if err != nil && errors.Is(err, ErrPaced) {
		r.pace(ctx, it, err)
		return false
	}
	if err == nil || errors.Is(err, ErrPermanent) || it.attempts >= r.opts.MaxAttempts {
		if err != nil && !errors.Is(err, ErrPermanent) {
			err = Permanent(fmt.Errorf("gave up after %d attempts: %w", it.attempts, err))
		}
		r.finish(ctx, it, remote, q.Event, err, hooks)
		return true
	}
	wait := r.backoff(it.attempts, err)
	log.Warn().Err(err).Int("attempt", it.attempts).Dur("retry_in", wait).Msg("Delivery failed, will retry")
	r.metrics.retries.WithLabelValues(string(it.lane.Network)).Inc()
	next := r.now().Add(wait)
	if werr := r.writer.do(ctx, func(ctx context.Context) error {
		_, err := r.db.Exec(ctx, retryQueueQuery, it.attempts, ms(next), it.seq)
		return err
	}); werr != nil {
		log.Error().Err(werr).Msg("Failed to record retry")
	}
	it.nextAt = next
	if it.attempts == 1 {
		r.report(ctx, it, q.Event, StateRetrying, err)
	}
	return false
}

// deliveryFields are the fields of every line logged about one delivery,
// added when the line is written (a zerolog.Hook), so a delivery that logs
// nothing costs no sub-logger.
type deliveryFields struct {
	conv    ConversationID
	msg     MessageID
	network NetworkID
	seq     int64
}

// Run implements zerolog.Hook.
func (f *deliveryFields) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("conversation", string(f.conv)).
		Str("message", string(f.msg)).
		Str("dest_network", string(f.network)).
		Int64("seq", f.seq)
}

// sendAbortable runs send under the router's send context (cancelled by
// Stop), and stops waiting for a connector call that ignores the
// cancellation once Stop abandons it. hooks are those the connector
// registered (Delivery.OnCommit) for a send that succeeded.
func (r *Router) sendAbortable(ctx context.Context, it *item, q *queuedEvent) (RemoteID, []commitHook, error) {
	// send bounds the call with its own timeout context, cancelled when it
	// returns; no per-delivery cancel context is needed on top.
	sctx := zerolog.Ctx(ctx).WithContext(r.sendCtx)
	type result struct {
		remote RemoteID
		hooks  []commitHook
		err    error
	}
	done := make(chan result, 1)
	snapshot := *it // an abandoned call must not race with the worker
	go func() {
		remote, hooks, err := r.send(sctx, &snapshot, q)
		done <- result{remote, hooks, err}
	}()
	select {
	case res := <-done:
		return res.remote, res.hooks, res.err
	case <-r.abandoned:
		return "", nil, fmt.Errorf("%w: abandoned at shutdown", context.Canceled)
	}
}

// pace reschedules a delivery the connector held back (ErrPaced): it does
// not count as an attempt, is not reported to the sender, and is never
// given up on.
func (r *Router) pace(ctx context.Context, it *item, err error) {
	it.attempts--
	wait := time.Millisecond
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > wait {
		wait = ra.After
	}
	r.metrics.paced.WithLabelValues(string(it.lane.Network)).Inc()
	next := r.now().Add(wait)
	if werr := r.writer.do(ctx, func(ctx context.Context) error {
		_, err := r.db.Exec(ctx, retryQueueQuery, it.attempts, ms(next), it.seq)
		return err
	}); werr != nil {
		zerolog.Ctx(ctx).Error().Err(werr).Msg("Failed to record paced delivery")
	}
	it.nextAt = next
}

// send calls the destination connector's method for the event's kind. It
// returns the hooks the connector registered when the send succeeded.
func (r *Router) send(ctx context.Context, it *item, q *queuedEvent) (RemoteID, []commitHook, error) {
	c, ok := r.connectors[it.lane.Network]
	if !ok {
		return "", nil, Permanent(fmt.Errorf("%w: %s", ErrUnknownNetwork, it.lane.Network))
	}
	d := &Delivery{
		ID:           DeliveryID(strconv.FormatInt(it.seq, 10)),
		Conversation: it.conv,
		Message:      it.msg,
		Chat:         it.lane.Chat,
		Event:        q.Event,
		Attempt:      it.attempts,
		Expires:      it.expiresAt,
		router:       r,
	}
	var err error
	if q.ReplyTo != "" {
		if d.ReplyTo, err = r.remoteID(ctx, q.ReplyTo, it.lane); err != nil {
			return "", nil, err
		}
	}
	if q.Target != "" {
		if d.Target, err = r.remoteID(ctx, q.Target, it.lane); err != nil {
			return "", nil, err
		}
		if d.Target == "" && q.Event.Kind != KindReadReceipt {
			return "", nil, Permanent(fmt.Errorf("%w: %s", ErrTargetUnknown, it.lane))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.SendTimeout)
	defer cancel()
	network := it.lane.Network
	var remote RemoteID
	notSupported := func(capability string) error {
		return &NotSupportedError{Network: network, Capability: capability}
	}
	err = safeCall(r, network, string(q.Event.Kind), func() error {
		var err error
		switch q.Event.Kind {
		case KindMessage:
			if q.Event.History {
				hr, ok := c.(HistoryReceiver)
				if !ok {
					return notSupported("history")
				}
				remote, err = hr.SendHistory(ctx, d)
			} else if q.Event.Content.Type.IsMedia() {
				ms, ok := c.(MediaSender)
				if !ok {
					return notSupported("media")
				}
				remote, err = ms.SendMedia(ctx, d)
			} else {
				remote, err = c.SendMessage(ctx, d)
			}
		case KindEdit:
			es, ok := c.(EditSender)
			if !ok {
				return notSupported("edits")
			}
			remote, err = es.SendEdit(ctx, d)
		case KindReaction:
			rs, ok := c.(ReactionSender)
			if !ok {
				return notSupported("reactions")
			}
			remote, err = rs.SendReaction(ctx, d)
		case KindDelete:
			ds, ok := c.(DeleteSender)
			if !ok {
				return notSupported("deletes")
			}
			err = ds.SendDelete(ctx, d)
		case KindReadReceipt:
			rs, ok := c.(ReadReceiptSender)
			if !ok || d.Target == "" {
				return nil // read receipts are best effort; nothing to tell the sender
			}
			err = rs.SendReadReceipt(ctx, d)
		case KindChatInfo:
			remote, err = sendChatInfo(ctx, c, d)
		default:
			err = Permanent(fmt.Errorf("%w: kind %q", ErrInvalidEvent, q.Event.Kind))
		}
		return err
	})
	if err != nil {
		return remote, nil, err
	}
	return remote, d.commits, nil
}

// pendingKey names a delivered message whose map row is not committed yet.
type pendingKey struct {
	msg  MessageID
	lane laneKey
}

// pendingRemoteKey names a delivered copy by its leg and remote ID.
type pendingRemoteKey struct {
	lane   laneKey
	remote RemoteID
}

// messageID translates a remote ID on a leg into the core message ID,
// including copies delivered a moment ago whose map row is not committed.
// The in-memory entry is checked first: it is removed only after the row
// is committed, so the database read that follows a miss sees the row.
func (r *Router) messageID(ctx context.Context, leg Leg, remote RemoteID) (MessageID, error) {
	if v, ok := r.pendingRemote.Load(pendingRemoteKey{leg, remote}); ok {
		return v.(MessageID), nil
	}
	return lookupMessageID(ctx, r.db, leg, remote)
}

// remoteID translates a core message ID into the lane's remote ID.
func (r *Router) remoteID(ctx context.Context, msg MessageID, lane laneKey) (RemoteID, error) {
	if v, ok := r.pending.Load(pendingKey{msg, lane}); ok {
		return v.(RemoteID), nil
	}
	return lookupRemoteID(ctx, r.db, msg, lane)
}

// finish records a delivered or permanently failed item, with the
// connector's hooks (commit.go), and tells the sender.
func (r *Router) finish(ctx context.Context, it *item, remote RemoteID, evt *Event, deliveryErr error, hooks []commitHook) {
	network := string(it.lane.Network)
	now := r.now()
	key := pendingKey{it.msg, it.lane}
	rkey := pendingRemoteKey{it.lane, remote}
	if deliveryErr == nil && remote != "" {
		// Later deliveries on this lane, and replies or reactions to this
		// copy arriving from its network, may reference the message before
		// the map row is committed.
		r.pending.Store(key, remote)
		r.pendingRemote.Store(rkey, it.msg)
	}
	// The worker goes on with the lane while the row is deleted; the item
	// stays held until then.
	op := &finishOp{it: it, remote: remote, record: deliveryErr == nil && remote != "", now: now, hooks: hooks}
	var done func(err error)
	done = func(err error) {
		if err != nil && len(op.hooks) > 0 {
			// The connector's bookkeeping must not keep the delivery
			// queued: record it again without, and let the connector
			// write on its own.
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Finished delivery with the connector's bookkeeping failed to commit; recording it alone")
			hooksDone(op.hooks, err)
			op.hooks = nil
			r.writer.doAsync(&writeOp{finish: op, done: done})
			return
		}
		hooksDone(op.hooks, err)
		if err != nil {
			// The delivery happened; the row stays and is retried after a
			// restart, which the destination may see as a duplicate.
			zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to record finished delivery")
		}
		r.pending.Delete(key)
		r.pendingRemote.Delete(rkey)
		r.disp.release(it)
	}
	r.writer.doAsync(&writeOp{finish: op, done: done})
	if deliveryErr != nil {
		r.metrics.messages.WithLabelValues(network, "out", "failed").Inc()
		zerolog.Ctx(ctx).Warn().Err(deliveryErr).Msg("Delivery failed permanently")
		if evt != nil {
			r.report(ctx, it, evt, StateFailed, deliveryErr)
		}
		return
	}
	r.metrics.messages.WithLabelValues(network, "out", "delivered").Inc()
	r.metrics.latency.WithLabelValues(network).Observe(now.Sub(it.acceptedAt).Seconds())
	r.report(ctx, it, evt, StateDelivered, nil)
}

// report tells the source leg's connector what happened, if it listens.
func (r *Router) report(ctx context.Context, it *item, evt *Event, state DeliveryState, err error) {
	src, ok := r.connectors[evt.Source.Network].(StatusReceiver)
	if !ok {
		return
	}
	rep := &StatusReport{
		Conversation: it.conv,
		Message:      it.msg,
		Source:       evt.Source,
		SourceID:     evt.SourceID,
		Kind:         evt.Kind,
		Destination:  it.lane,
		State:        state,
		Err:          err,
	}
	_ = safeCall(r, evt.Source.Network, "status", func() error {
		src.HandleStatus(ctx, rep)
		return nil
	})
}

func (r *Router) backoff(attempt int, err error) time.Duration {
	wait := r.opts.RetryBase << min(attempt-1, 30)
	if wait <= 0 || wait > r.opts.RetryMax {
		wait = r.opts.RetryMax
	}
	// ±20% jitter so many failing legs do not retry in lockstep.
	wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > wait {
		wait = ra.After
	}
	return wait
}

// poll takes over lanes with queued work that no live process holds (after
// a crash), and on PostgreSQL also loads rows other processes queued for
// lanes this process holds.
func (r *Router) poll(ctx context.Context) error {
	now := r.now()
	rows, err := r.db.Query(ctx, pendingLanesQuery, ms(now), r.owner)
	if err != nil {
		return fmt.Errorf("%w: scan queue: %w", ErrDatabase, err)
	}
	type pending struct {
		k       laneKey
		ours    bool
		foreign int64
	}
	var lanes []pending
	for rows.Next() {
		var p pending
		var ours sql.NullBool
		if err = rows.Scan(&p.k.Network, &p.k.Chat, &ours, &p.foreign); err != nil {
			rows.Close()
			return err
		}
		p.ours = ours.Valid && ours.Bool
		lanes = append(lanes, p)
	}
	rows.Close()
	for _, p := range lanes {
		k := p.k
		r.disp.mu.Lock()
		l := r.disp.lanes[k]
		busy := l != nil && (len(l.items) > 0 || l.inflight != nil)
		// A busy lane this process holds whose rows queued by other
		// processes are all loaded holds everything queued for it.
		current := busy && p.ours && p.foreign <= l.foreignSeen
		r.disp.mu.Unlock()
		if busy && (!r.disp.multiProcess || current) {
			continue // everything queued is already held
		}
		res, err := r.db.Exec(ctx, acquireLeaseQuery, r.owner, ms(now.Add(r.opts.Lease)), k.Network, k.Chat, ms(now))
		if err != nil {
			return fmt.Errorf("%w: acquire lease: %w", ErrDatabase, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // another process holds it
		}
		r.disp.markLeased([]laneKey{k}, now)
		items, err := r.loadLane(ctx, k, math.MaxInt64)
		if err != nil {
			return err
		}
		r.disp.push(items)
		if len(items) < laneLoadLimit {
			// Rows up to foreign_seq were committed before it was read.
			r.disp.noteForeign(k, p.foreign)
		}
	}
	return nil
}

// loadLane reads the queued rows of a lane with seq below before.
func (r *Router) loadLane(ctx context.Context, k laneKey, before int64) ([]*item, error) {
	rows, err := r.db.Query(ctx, laneItemsQuery, k.Network, k.Chat, before, laneLoadLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: load lane: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var items []*item
	for rows.Next() {
		it, err := scanItem(rows, k)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// pollLoop recovers abandoned work and renews this process's leases.
func (r *Router) pollLoop() {
	defer r.bg.Done()
	ctx := r.log.WithContext(context.Background())
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()
	renew := time.NewTicker(r.opts.Lease / 3)
	defer renew.Stop()
	for {
		select {
		case <-r.stopped:
			return
		case <-poll.C:
			if err := r.poll(ctx); err != nil {
				r.log.Warn().Err(err).Msg("Queue poll failed")
			}
		case <-renew.C:
			now := r.now()
			until := now.Add(r.opts.Lease)
			if _, err := r.db.Exec(ctx, renewLeasesQuery, r.owner, ms(until)); err != nil {
				r.log.Warn().Err(err).Msg("Failed to renew leases")
				continue
			}
			r.disp.mu.Lock()
			for k := range r.disp.leases {
				r.disp.leases[k] = until
			}
			r.disp.mu.Unlock()
		}
	}
}

// safeCall runs connector code, turning a panic into a *PanicError that is
// logged with its stack and counted; the daemon keeps running.
func safeCall(r *Router, network NetworkID, what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			r.metrics.panics.WithLabelValues(string(network)).Inc()
			r.log.Error().
				Str("network", string(network)).
				Str("call", what).
				Any("panic", p).
				Bytes("stack", stack).
				Msg("Recovered panic in connector")
			err = &PanicError{Value: p, Stack: stack}
		}
	}()
	return fn()
}
