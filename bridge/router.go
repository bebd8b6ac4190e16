package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// Options configure a Router. Zero values pick the defaults noted.
type Options struct {
	// DB is the shared database; the router runs its own migrations on it
	// (version table sb_core_version) in Start.
	DB *dbutil.Database
	// Secret keys the encryption of queued payloads (identity.secret).
	Secret []byte
	Log    zerolog.Logger
	// Registerer receives the router's metrics (nil: not registered).
	Registerer prometheus.Registerer

	// Workers deliver in parallel across legs (default 4).
	Workers int
	// MaxAttempts before a transiently failing delivery counts as failed (default 12).
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff (defaults 1s, 10m).
	RetryBase, RetryMax time.Duration
	// Lease is how long a process owns a leg's queue before another may
	// take over (default 30s). PollInterval is how often the queue is
	// scanned for work this process does not hold yet (default 1s).
	Lease, PollInterval time.Duration
	// SendTimeout bounds one connector call (default 2m).
	SendTimeout time.Duration
	// StopGrace is how long Stop lets in-flight deliveries finish before
	// it cancels their context (default 2s; at once when Stop's own
	// context ends). A cancelled delivery is not counted as an attempt
	// and stays queued for the next start. A connector call that ignores
	// the cancellation is abandoned a moment later.
	StopGrace time.Duration

	// RetentionPolicy gives messages their deadlines from the server and
	// network defaults, conversation settings and chat timers (see
	// RetentionPolicy.Effective). Nil keeps messages until deleted, unless
	// they carry their own timer.
	RetentionPolicy *RetentionPolicy
	// MetadataRetention bounds how long mapping rows without a deadline are
	// kept (retention.metadata; 0 = kept). See expiry.go.
	MetadataRetention time.Duration
	// Now is the clock (default time.Now); tests pass a fake.
	Now func() time.Time
	// Admitter, if set, decides on every event before it is accepted
	// (see Admitter; SetAdmitter sets it later).
	Admitter Admitter
}

// Router maps conversations across connectors and delivers messages
// durably. Create it with New, Register connectors, then Start.
type Router struct {
	db      *dbutil.Database
	opts    Options
	log     zerolog.Logger
	seal    *sealer
	metrics *metrics
	owner   string
	now     func() time.Time

	connectors map[NetworkID]Connector
	order      []NetworkID
	started    []Connector

	writer *writer
	disp   *dispatcher
	expiry *expirer
	stmts  *stmtCache
	// admitter decides on events before they are accepted (admit.go).
	admitter Admitter
	// pending maps delivered messages to their remote IDs until the map
	// row is committed (pendingKey -> RemoteID).
	pending sync.Map
	// pendingRemote is the reverse: pendingRemoteKey -> MessageID.
	pendingRemote sync.Map
	// retCache keeps conversations' retention inputs (retcache.go).
	retCache retentionCache
	// legCache keeps legs' conversations and sibling legs (legcache.go).
	legCache legCache

	stopOnce sync.Once
	stopped  chan struct{}
	bg       sync.WaitGroup

	// sendCtx is the parent of every connector send; Stop cancels it
	// (abortSends) after StopGrace, and closes abandoned a moment later.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	abortOnce  sync.Once
	abandoned  chan struct{}
}

// New creates a router. It does no I/O.
func New(opts Options) (*Router, error) {
	if opts.DB == nil {
		return nil, errors.New("bridge: Options.DB is required")
	}
	seal, err := newSealer(opts.Secret)
	if err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 12
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Minute
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 2 * time.Minute
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Router{
		db:         opts.DB,
		opts:       opts,
		log:        opts.Log.With().Str("component", "router").Logger(),
		seal:       seal,
		metrics:    newMetrics(opts.Registerer),
		owner:      newID("p_"),
		now:        opts.Now,
		connectors: make(map[NetworkID]Connector),
		stopped:    make(chan struct{}),
		admitter:   opts.Admitter,
		abandoned:  make(chan struct{}),
	}
	r.sendCtx, r.cancelSend = context.WithCancel(context.Background())
	return r, nil
}

// Register adds a connector and calls its Init. Call before Start.
func (r *Router) Register(c Connector) error {
	network := c.Network()
	if _, ok := r.connectors[network]; ok {
		return fmt.Errorf("bridge: connector for %q registered twice", network)
	}
	r.connectors[network] = c
	r.order = append(r.order, network)
	log := r.opts.Log.With().Str("network", string(network)).Logger()
	c.Init(&host{router: r, network: network, log: log})
	return nil
}

// Connector returns the connector for a network.
func (r *Router) Connector(network NetworkID) (Connector, bool) {
	c, ok := r.connectors[network]
	return c, ok
}

// Connectors returns the registered connectors in registration order.
func (r *Router) Connectors() []Connector {
	out := make([]Connector, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.connectors[n])
	}
	return out
}

// DB returns the router's database (with the core version table).
func (r *Router) DB() *dbutil.Database { return r.db }

// Start migrates the core schema, recovers undelivered messages, starts
// every connector, and then the delivery workers. If a connector fails to
// start, the ones already started are stopped and the error returned.
func (r *Router) Start(ctx context.Context) error {
	db, err := database.Upgrade(ctx, r.db, migrations.Core, r.log)
	if err != nil {
		return err
	}
	r.db = db
	if r.db.Dialect == dbutil.SQLite {
		// SQLite is used by one process only: leases left by a previous
		// run of this daemon (a crash) can be taken over at once.
		if _, err = r.db.Exec(ctx, releaseAllQuery); err != nil {
			return fmt.Errorf("%w: release leases: %w", ErrDatabase, err)
		}
	}
	if r.stmts, err = prepareStmts(ctx, r.db); err != nil {
		return err
	}
	r.writer = newWriter(r.db, r, r.log.With().Str("component", "queue_writer").Logger())
	writers := 1
	if r.db.Dialect != dbutil.SQLite {
		writers = 4
	}
	r.writer.start(writers)
	r.disp = newDispatcher(r)
	// Recover what earlier runs accepted but did not deliver, before any
	// connector can submit new events, so each leg stays in order.
	if err = r.poll(ctx); err != nil {
		r.writer.close()
		return err
	}
	r.bg.Add(1)
	go r.pollLoop()
	for _, network := range r.order {
		c := r.connectors[network]
		err := safeCall(r, network, "start", func() error { return c.Start(ctx) })
		if err != nil {
			r.log.Error().Err(err).Str("network", string(network)).Msg("Connector failed to start")
			_ = r.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("start %s connector: %w", network, err)
		}
		r.started = append(r.started, c)
	}
	// Workers start once every connector has: a recovered delivery must
	// not reach a connector whose Start is still setting it up.
	r.disp.start(r.opts.Workers)
	r.startExpiry() // after the connectors: overdue deletes need them
	return nil
}

// Stop stops the connectors (newest first), lets in-flight deliveries
// finish for StopGrace (or until ctx ends) and then cancels them, and
// flushes pending writes. Undelivered messages, cancelled ones included,
// stay queued for the next start.
func (r *Router) Stop(ctx context.Context) error {
	var errs []error
	r.stopOnce.Do(func() {
		grace := time.AfterFunc(r.opts.StopGrace, r.abortSends)
		defer grace.Stop()
		defer context.AfterFunc(ctx, r.abortSends)()
		r.stopExpiry()
		for i := len(r.started) - 1; i >= 0; i-- {
			c := r.started[i]
			if err := safeCall(r, c.Network(), "stop", func() error { return c.Stop(ctx) }); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", c.Network(), err))
			}
		}
		close(r.stopped)
		if r.disp != nil {
			r.disp.stop()
		}
		r.bg.Wait()
		if r.writer != nil {
			r.writer.close()
		}
		if r.stmts != nil {
			r.stmts.close()
		}
		if r.db != nil {
			if _, err := r.db.Exec(ctx, releaseOwnQuery, r.owner); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// abandonWait is how long a connector call may ignore its cancelled
// context before the router stops waiting for it.
const abandonWait = time.Second

// abortSends ends deliveries: no new one starts, in-flight ones have their
// context cancelled, and calls still running abandonWait later are
// abandoned (see deliver).
func (r *Router) abortSends() {
	r.abortOnce.Do(func() {
		if r.disp != nil {
			r.disp.halt()
		}
		r.cancelSend()
		time.AfterFunc(abandonWait, func() { close(r.abandoned) })
	})
}

// CreateConversation creates a conversation joining the given legs.
func (r *Router) CreateConversation(ctx context.Context, legs ...Leg) (ConversationID, error) {
	id := NewConversationID()
	return id, r.CreateConversationWithID(ctx, id, legs...)
}

// CreateConversationWithID creates a conversation with an ID from
// NewConversationID, for callers that need the ID before the legs exist
// (a connector that assigns resources per conversation, say).
func (r *Router) CreateConversationWithID(ctx context.Context, id ConversationID, legs ...Leg) error {
	now := ms(r.now())
	err := r.changingLegs(id, nil, func() error {
		return r.db.DoTxn(ctx, nil, func(ctx context.Context) error {
			if _, err := r.db.Exec(ctx, insertConversationQuery, id, now); err != nil {
				return err
			}
			for _, leg := range legs {
				if err := r.insertLeg(ctx, id, leg, now); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%w: create conversation: %w", ErrDatabase, err)
	}
	r.legsChanged(ctx, id)
	return nil
}

// AddLeg joins a leg to an existing conversation.
func (r *Router) AddLeg(ctx context.Context, conv ConversationID, leg Leg) error {
	err := r.changingLegs(conv, nil, func() error { return r.insertLeg(ctx, conv, leg, ms(r.now())) })
	if err != nil {
		return err
	}
	r.legsChanged(ctx, conv)
	return nil
}

func (r *Router) insertLeg(ctx context.Context, conv ConversationID, leg Leg, now int64) error {
	if leg.Network == "" || leg.Chat == "" {
		return fmt.Errorf("%w: empty leg", ErrInvalidEvent)
	}
	existing, err := r.ConversationOf(ctx, leg)
	if err != nil && !errors.Is(err, ErrUnknownLeg) {
		return err
	} else if existing != "" {
		return fmt.Errorf("%w: %s", ErrLegInUse, leg)
	}
	if _, err = r.db.Exec(ctx, insertLegQuery, leg.Network, leg.Chat, conv, now); err != nil {
		return fmt.Errorf("%w: add leg: %w", ErrDatabase, err)
	}
	return nil
}

// RemoveLeg takes a leg out of its conversation and drops what was queued
// for it.
func (r *Router) RemoveLeg(ctx context.Context, leg Leg) error {
	conv, _ := r.ConversationOf(ctx, leg)
	// conv "" (not found, or the lookup failed): every entry is forgotten.
	err := r.changingLegs(conv, []Leg{leg}, func() error {
		return r.db.DoTxn(ctx, nil, func(ctx context.Context) error {
			if _, err := r.db.Exec(ctx, deleteLegQueueQuery, leg.Network, leg.Chat); err != nil {
				return err
			}
			_, err := r.db.Exec(ctx, deleteLegQuery, leg.Network, leg.Chat)
			return err
		})
	})
	if err == nil && conv != "" {
		r.legsChanged(ctx, conv, leg)
	}
	return err
}

// legsChanged tells the LegObservers with a chat in conv (or among
// removed) what conv's legs are now. Failures are the observers' own.
func (r *Router) legsChanged(ctx context.Context, conv ConversationID, removed ...Leg) {
	r.retCache.forget(conv)
	legs, err := r.Legs(ctx, conv)
	if err != nil {
		r.log.Warn().Err(err).Str("conversation", string(conv)).Msg("Failed to list legs for leg observers")
		return
	}
	told := make(map[NetworkID]bool)
	for _, l := range append(append([]Leg(nil), legs...), removed...) {
		obs, ok := r.connectors[l.Network].(LegObserver)
		if !ok || told[l.Network] {
			continue
		}
		told[l.Network] = true
		_ = safeCall(r, l.Network, "legs changed", func() error {
			obs.LegsChanged(ctx, conv, legs)
			return nil
		})
	}
}

// ConversationOf returns the conversation a leg belongs to, or ErrUnknownLeg.
func (r *Router) ConversationOf(ctx context.Context, leg Leg) (ConversationID, error) {
	var id ConversationID
	err := r.db.QueryRow(ctx, legConversationQuery, leg.Network, leg.Chat).Scan(&id)
	if err != nil {
		if errors.Is(err, sqlNoRows) {
			return "", fmt.Errorf("%w: %s", ErrUnknownLeg, leg)
		}
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return id, nil
}

// Legs lists the legs of a conversation.
func (r *Router) Legs(ctx context.Context, conv ConversationID) ([]Leg, error) {
	rows, err := r.db.Query(ctx, conversationLegsQuery, conv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var legs []Leg
	for rows.Next() {
		var l Leg
		if err = rows.Scan(&l.Network, &l.Chat); err != nil {
			return nil, err
		}
		legs = append(legs, l)
	}
	return legs, rows.Err()
}

// QueueDepth counts undelivered queue rows in the database (all processes).
func (r *Router) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := r.db.QueryRow(ctx, queueDepthQuery).Scan(&n)
	return n, err
}

// queuedEvent is what a queue row's payload holds, sealed.
type queuedEvent struct {
	Event *Event `json:"e"`
	// ReplyTo and Target are the core IDs of the referenced messages.
	ReplyTo MessageID `json:"r,omitempty"`
	Target  MessageID `json:"t,omitempty"`
}

func payloadAD(lane Leg, msg MessageID) []byte {
	return []byte(string(lane.Network) + "\x00" + string(lane.Chat) + "\x00" + string(msg))
}

// acceptOp is one Submit inside a writer batch.
type acceptOp struct {
	evt       *Event
	msg       MessageID
	duplicate bool
	ignored   bool
	err       error
	items     []*item
	leased    []Leg
	foreign   map[Leg]int64
	// reserved are the seqs of rows this op inserted for lanes it holds.
	reserved []int64
	expires  time.Time
	// excluded are legs the admitter kept the event from (blocks).
	excluded map[Leg]bool
}

// Submit implements Host.Submit for the connector of evt.Source.Network.
func (r *Router) Submit(ctx context.Context, evt *Event) error {
	op, err := r.prepareSubmit(ctx, evt)
	if err != nil || op == nil {
		return err
	}
	err = r.writer.doOp(ctx, &writeOp{accepts: []*acceptOp{op}})
	defer r.disp.unreserve(op.reserved)
	return r.accepted(ctx, op, err)
}

// SubmitBatch implements BatchSubmitter: it accepts evts in slice order as
// one writer op, so they share a transaction and its commit. errs[i] is
// what Submit(ctx, evts[i]) would have returned (a database error fails
// every event that reached the writer).
func (r *Router) SubmitBatch(ctx context.Context, evts []*Event) []error {
	errs := make([]error, len(evts))
	ops := make([]*acceptOp, 0, len(evts))
	idx := make([]int, 0, len(evts))
	for i, evt := range evts {
		op, err := r.prepareSubmit(ctx, evt)
		if err != nil || op == nil {
			errs[i] = err
			continue
		}
		ops = append(ops, op)
		idx = append(idx, i)
	}
	if len(ops) == 0 {
		return errs
	}
	err := r.writer.doOp(ctx, &writeOp{accepts: ops})
	for j, op := range ops {
		errs[idx[j]] = r.accepted(ctx, op, err)
		r.disp.unreserve(op.reserved)
	}
	return errs
}

// prepareSubmit checks an event and runs admission. It returns the accept
// op to run, or nil with the outcome when the event ends here (refused,
// typing forwarded, a refused redelivery answered as a duplicate).
func (r *Router) prepareSubmit(ctx context.Context, evt *Event) (*acceptOp, error) {
	if err := evt.Validate(); err != nil {
		return nil, err
	}
	if _, ok := r.connectors[evt.Source.Network]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNetwork, evt.Source.Network)
	}
	select {
	case <-r.stopped:
		return nil, ErrStopped
	default:
	}
	if evt.Timestamp.IsZero() {
		evt.Timestamp = r.now()
	}
	var excluded map[Leg]bool
	if r.admitter != nil || evt.Kind == KindTyping {
		_, dests, excl, err := r.admit(ctx, evt)
		if err != nil && evt.Kind == KindTyping {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Typing notification not forwarded")
			return nil, nil
		}
		if err != nil && errors.Is(err, ErrRefused) {
			// A redelivery of an event accepted earlier (a webhook or
			// transaction retried) is a duplicate, not a refusal.
			if known, lerr := r.knownSource(ctx, evt.Source, evt.SourceID); lerr == nil && known {
				r.metrics.messages.WithLabelValues(string(evt.Source.Network), "in", "duplicate").Inc()
				return nil, nil
			}
			r.metrics.messages.WithLabelValues(string(evt.Source.Network), "in", "refused").Inc()
		}
		if err != nil {
			return nil, err
		}
		if evt.Kind == KindTyping {
			r.forwardTyping(evt, dests, excl)
			return nil, nil
		}
		excluded = excl
	}
	return &acceptOp{evt: evt, msg: NewMessageID(), excluded: excluded}, nil
}

// accepted finishes a Submit once the writer ran op (err is the writer's):
// the outcome is counted and the queued rows handed to the dispatcher.
func (r *Router) accepted(ctx context.Context, op *acceptOp, err error) error {
	if err != nil {
		return fmt.Errorf("%w: accept: %w", ErrDatabase, err)
	}
	evt := op.evt
	network := string(evt.Source.Network)
	switch {
	case op.err != nil:
		return op.err
	case op.duplicate:
		r.metrics.messages.WithLabelValues(network, "in", "duplicate").Inc()
		zerolog.Ctx(ctx).Debug().Str("source_id", string(evt.SourceID)).Msg("Dropped duplicate event")
		return nil
	case op.ignored:
		return nil
	}
	r.metrics.messages.WithLabelValues(network, "in", "accepted").Inc()
	r.disp.markLeased(op.leased, r.now())
	r.disp.push(op.items)
	r.noteExpiry(op.expires)
	for leg, foreign := range op.foreign {
		r.disp.noteForeign(leg, foreign)
	}
	return nil
}

// forwardTyping passes a typing notification straight to the other legs
// (except those the admitter excluded); it is ephemeral and never queued.
func (r *Router) forwardTyping(evt *Event, dests []Leg, excluded map[Leg]bool) {
	for _, dest := range dests {
		if excluded[dest] {
			continue
		}
		ts, ok := r.connectors[dest.Network].(TypingSender)
		if !ok {
			continue
		}
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			ctx, cancel := context.WithTimeout(r.log.WithContext(context.Background()), 30*time.Second)
			defer cancel()
			_ = safeCall(r, dest.Network, "typing", func() error {
				return ts.SendTyping(ctx, dest.Chat, evt.Sender, evt.Typing)
			})
		}()
	}
}

func (r *Router) openMedia(ctx context.Context, network NetworkID, media *Media) (io.ReadCloser, error) {
	c, ok := r.connectors[network]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNetwork, network)
	}
	dl, ok := c.(MediaDownloader)
	if !ok {
		return nil, &NotSupportedError{Network: network, Capability: "media download"}
	}
	var rc io.ReadCloser
	err := safeCall(r, network, "download media", func() error {
		var err error
		rc, err = dl.DownloadMedia(ctx, media)
		return err
	})
	return rc, err
}

// host is the Host given to one connector.
type host struct {
	router  *Router
	network NetworkID
	log     zerolog.Logger
}

var (
	_ Host           = (*host)(nil)
	_ BatchSubmitter = (*host)(nil)
)

func (h *host) Submit(ctx context.Context, evt *Event) error {
	if evt.Source.Network != h.network {
		return fmt.Errorf("%w: %s connector submitted an event from %s", ErrInvalidEvent, h.network, evt.Source.Network)
	}
	return h.router.Submit(ctx, evt)
}

// SubmitBatch implements BatchSubmitter.
func (h *host) SubmitBatch(ctx context.Context, evts []*Event) []error {
	for _, evt := range evts {
		if evt.Source.Network != h.network {
			errs := make([]error, len(evts))
			for i := range errs {
				errs[i] = fmt.Errorf("%w: %s connector submitted an event from %s", ErrInvalidEvent, h.network, evt.Source.Network)
			}
			return errs
		}
	}
	return h.router.SubmitBatch(ctx, evts)
}

func (h *host) Log() *zerolog.Logger { return &h.log }
