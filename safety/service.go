package safety

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/periodic"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// Notifier delivers the bot's notices: to the admin room, and to users in
// their direct chat with the bot. The Matrix connector implements it
// (NotifyRoom, NotifyUser), through an adapter in the daemon.
type Notifier interface {
	NotifyRoom(ctx context.Context, room string, text string)
	NotifyUser(ctx context.Context, user string, text string) error
}

// HistoryMessage is one message from a room's history that a reporter
// chose to include in a report.
type HistoryMessage struct {
	At   time.Time
	Body string
}

// Options configure a Service. DB and People are required.
type Options struct {
	DB     *dbutil.Database
	Config config.Safety
	// MetadataRetention bounds how long signals and decisions are kept
	// (retention.metadata; 0 = kept).
	MetadataRetention time.Duration
	// Admins are the Matrix users with admin permission; they are told
	// directly when Config.AdminRoom is empty.
	Admins []string
	Log    zerolog.Logger
	// Registerer receives the safety metrics (the router's registry).
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time

	// People maps an address to its person key
	// (identity.Store.PersonKey): one key for every address a verified
	// identity links.
	People func(ctx context.Context, addr bridge.Address) (string, error)
	// Aliases, if set, returns every person key of an address, its People
	// key first (identity.Store.PersonKeys). Blocks are recorded under all
	// of them and checked against all of them, so they survive the person
	// linking or unlinking a number.
	Aliases func(ctx context.Context, addr bridge.Address) ([]string, error)
	// LegOwner returns the Matrix user a leg belongs to (a portal's
	// owner), or "" when it belongs to nobody in particular.
	LegOwner func(ctx context.Context, leg bridge.Leg) (string, error)
	// Legs returns the conversation a leg belongs to and all its legs.
	Legs func(ctx context.Context, leg bridge.Leg) (bridge.ConversationID, []bridge.Leg, error)
	// Contact returns the contact behind a non-Matrix leg (SMS: its
	// pseudonym), for rooms where the contact has not written yet.
	// Optional.
	Contact func(ctx context.Context, leg bridge.Leg) (bridge.Sender, bool, error)
	// History returns up to n of the latest messages the contact (not the
	// reporter, not the bot) sent in a Matrix room, for `report with last
	// n`. Optional.
	History func(ctx context.Context, room string, n int) ([]HistoryMessage, error)
	// Notifier sends the notices to admins and users.
	Notifier Notifier
}

// Service is the safety service. Create it with New, then Start.
type Service struct {
	opts    Options
	cfg     config.Safety
	store   *store
	log     zerolog.Logger
	now     func() time.Time
	metrics *metrics

	sender, conversation, inbound *limiter

	mu sync.RWMutex
	// blocks maps a blocker's person key to the person keys they blocked.
	blocks    map[string]map[string]bool
	suspended map[string]Suspension // by Matrix user ID
	// cleared is when an admin last lifted a user's suspension: only
	// signals after it count toward another automatic one.
	cleared map[string]time.Time
	owners  map[bridge.Leg]string
	legs    map[bridge.Leg]string // leg -> person key last seen writing there
	regions map[string]time.Time  // person+region -> recorded at
	act     *activity
	// flagged remembers when an admin was last told about a subject and
	// limit, so a burst makes one flag, not hundreds.
	flagged map[string]time.Time

	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// New builds the service. It does no I/O.
func New(opts Options) (*Service, error) {
	if opts.DB == nil || opts.People == nil {
		return nil, errors.New("safety: Options.DB and Options.People are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := opts.Config
	s := &Service{
		opts:         opts,
		cfg:          cfg,
		store:        &store{db: opts.DB},
		log:          opts.Log.With().Str("component", "safety").Logger(),
		now:          opts.Now,
		metrics:      newMetrics(opts.Registerer),
		sender:       newLimiter(cfg.SenderPerMinute, time.Minute),
		conversation: newLimiter(cfg.ConversationPerMinute, time.Minute),
		inbound:      newLimiter(cfg.InboundPerMinute, time.Minute),
		blocks:       map[string]map[string]bool{},
		suspended:    map[string]Suspension{},
		cleared:      map[string]time.Time{},
		owners:       map[bridge.Leg]string{},
		legs:         map[bridge.Leg]string{},
		regions:      map[string]time.Time{},
		act:          newActivity(),
		flagged:      map[string]time.Time{},
	}
	return s, nil
}

// Start runs the safety migrations (version table sb_safety_version), loads
// blocks and suspensions, and starts the purge loop.
func (s *Service) Start(ctx context.Context) error {
	db, err := database.Upgrade(ctx, s.store.db, migrations.Safety, s.log)
	if err != nil {
		return err
	}
	s.store.db = db
	blocks, err := s.store.blocks(ctx)
	if err != nil {
		return err
	}
	sus, err := s.store.suspensions(ctx)
	if err != nil {
		return err
	}
	cleared, err := s.store.lifted(ctx)
	if err != nil {
		return err
	}
	recent, err := s.store.activitySince(ctx, s.now().Add(-s.activityKept()))
	if err != nil {
		return err
	}
	s.act.load(recent)
	s.mu.Lock()
	s.blocks = blocks
	s.cleared = cleared
	for _, su := range sus {
		s.suspended[su.User] = su
	}
	s.mu.Unlock()
	bgCtx, cancel := context.WithCancel(s.log.WithContext(context.WithoutCancel(ctx)))
	s.cancel = cancel
	s.bg.Add(2)
	go s.purgeLoop(bgCtx)
	go func() {
		defer s.bg.Done()
		periodic.Run(bgCtx, flushEvery, s.flushActivity)
	}()
	return nil
}

// flushEvery is how often changed activity is written to the database.
const flushEvery = 30 * time.Second

// Stop ends the background loops and writes the activity that changed
// since the last flush.
func (s *Service) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.bg.Wait()
	s.cancel = nil
	ctx, cancel := context.WithTimeout(s.log.WithContext(context.Background()), 5*time.Second)
	defer cancel()
	s.flushActivity(ctx)
}

// flushActivity writes the activity of conversations that changed since
// the last flush; on failure they are written at the next one.
func (s *Service) flushActivity(ctx context.Context) {
	rows := s.act.takeDirty()
	if len(rows) == 0 {
		return
	}
	if err := s.store.saveActivity(ctx, rows); err != nil {
		s.act.markDirty(rows)
		zerolog.Ctx(ctx).Warn().Err(err).Int("rows", len(rows)).Msg("Failed to save safety activity; will retry")
	}
}

// activityKept is how long stored activity is kept: the signal window, or
// retention.metadata when that is shorter.
func (s *Service) activityKept() time.Duration {
	if r := s.opts.MetadataRetention; r > 0 && r < s.window() {
		return r
	}
	return s.window()
}

func (s *Service) window() time.Duration {
	if w := s.cfg.SignalWindow.Std(); w > 0 {
		return w
	}
	return 24 * time.Hour
}

func (s *Service) purgeLoop(ctx context.Context) {
	defer s.bg.Done()
	every := time.Hour
	if r := s.opts.MetadataRetention; r > 0 {
		every = min(max(r/4, time.Second), time.Hour)
	}
	periodic.Run(ctx, every, func(ctx context.Context) {
		if err := s.Purge(ctx); err != nil {
			s.log.Warn().Err(err).Msg("Failed to purge safety metadata")
		}
	})
}

// Purge deletes signals, decisions and remembered leg contacts older than
// retention.metadata, stored activity quiet for longer than activityKept,
// and forgets in-memory activity older than the signal window. Blocks and suspensions stay until lifted.
func (s *Service) Purge(ctx context.Context) error {
	now := s.now()
	s.act.prune(now.Add(-s.window()))
	for _, l := range []*limiter{s.sender, s.conversation, s.inbound} {
		l.prune(now)
	}
	s.mu.Lock()
	for k, at := range s.regions {
		if now.Sub(at) > s.window() {
			delete(s.regions, k)
		}
	}
	for k, at := range s.flagged {
		if now.Sub(at) > time.Hour {
			delete(s.flagged, k)
		}
	}
	s.mu.Unlock()
	if err := s.store.purgeActivity(ctx, now.Add(-s.activityKept())); err != nil {
		return err
	}
	if s.opts.MetadataRetention <= 0 {
		return nil
	}
	return s.store.purge(ctx, now.Add(-s.opts.MetadataRetention))
}
