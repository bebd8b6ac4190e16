package safety

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

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
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
	db, err := database.Upgrade(ctx, s.store.db, "sb_safety_version", migrations.Safety, "safety", s.log)
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
	s.mu.Lock()
	s.blocks = blocks
	s.cleared = cleared
	for _, su := range sus {
		s.suspended[su.User] = su
	}
	s.mu.Unlock()
	bgCtx, cancel := context.WithCancel(s.log.WithContext(context.WithoutCancel(ctx)))
	s.cancel = cancel
	s.bg.Add(1)
	go s.purgeLoop(bgCtx)
	return nil
}

// Stop ends the purge loop.
func (s *Service) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.bg.Wait()
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
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.Purge(ctx); err != nil {
				s.log.Warn().Err(err).Msg("Failed to purge safety metadata")
			}
		}
	}
}

// Purge deletes signals, decisions and remembered leg contacts older than
// retention.metadata, and forgets in-memory activity older than the
// signal window. Blocks and suspensions stay until lifted.
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
	if s.opts.MetadataRetention <= 0 {
		return nil
	}
	return s.store.purge(ctx, now.Add(-s.opts.MetadataRetention))
}

// decide logs and records a decision. detail never holds content or a
// phone number: only limits, counts, scores and pseudonyms.
func (s *Service) decide(ctx context.Context, subject, action, actor, detail string) {
	s.log.Info().Str("subject", subject).Str("action", action).Str("actor", actor).Str("detail", detail).Msg("Safety decision")
	if err := s.store.decision(ctx, subject, action, actor, detail, s.now()); err != nil {
		s.log.Warn().Err(err).Msg("Failed to record safety decision")
	}
}

// notifyAdmins sends text to the admin room, or to each admin directly.
func (s *Service) notifyAdmins(ctx context.Context, text string) {
	n := s.opts.Notifier
	if n == nil {
		return
	}
	if room := s.cfg.AdminRoom; room != "" {
		n.NotifyRoom(ctx, room, text)
		return
	}
	for _, admin := range s.opts.Admins {
		if err := n.NotifyUser(ctx, admin, text); err != nil {
			s.log.Warn().Err(err).Str("admin", admin).Msg("Failed to notify admin")
		}
	}
}

func (s *Service) notifyUser(ctx context.Context, user, text string) {
	if s.opts.Notifier == nil {
		return
	}
	if err := s.opts.Notifier.NotifyUser(ctx, user, text); err != nil {
		s.log.Warn().Err(err).Str("user", user).Msg("Failed to notify user")
	}
}

// flagOnce reports whether admins should be told about key now (once per
// hour per key).
func (s *Service) flagOnce(key string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.flagged[key]; ok && now.Sub(at) < time.Hour {
		return false
	}
	s.flagged[key] = now
	return true
}

// matrixKey is the person key of a Matrix user.
func matrixKey(user string) string { return string(bridge.NetworkMatrix) + ":" + user }

// userOfKey returns the Matrix user of a person key, if it is one.
func userOfKey(key string) (string, bool) {
	return strings.CutPrefix(key, string(bridge.NetworkMatrix)+":")
}

// displayKey shows a person key to admins: a Matrix user ID, or the
// contact's pseudonym with its network.
func displayKey(key string) string {
	if u, ok := userOfKey(key); ok {
		return u
	}
	network, id, ok := strings.Cut(key, ":")
	if !ok {
		return key
	}
	return fmt.Sprintf("%s (%s)", id, network)
}

// IsSuspended reports whether a Matrix user is suspended.
func (s *Service) IsSuspended(user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.suspended[user]
	return ok
}

// Suspend suspends a Matrix user (actor: "score" or an admin's user ID).
func (s *Service) Suspend(ctx context.Context, user, actor, reason string, score int) (bool, error) {
	now := s.now()
	s.mu.Lock()
	if _, ok := s.suspended[user]; ok {
		s.mu.Unlock()
		return false, nil
	}
	s.suspended[user] = Suspension{User: user, Reason: reason, Score: score, At: now}
	s.mu.Unlock()
	if err := s.store.exec(ctx, insertSuspendQuery, user, reason, score, ms(now)); err != nil {
		s.mu.Lock()
		delete(s.suspended, user)
		s.mu.Unlock()
		return false, err
	}
	by := "admin"
	if actor == actorScore {
		by = actorScore
	}
	s.metrics.suspensions.WithLabelValues(by).Inc()
	s.decide(ctx, matrixKey(user), "suspend", actor, fmt.Sprintf("score %d: %s", score, reason))
	s.notifyUser(ctx, user, "Your use of this bridge is suspended pending review by the bridge admins ("+reason+
		"). Messages you send through the bridge are not delivered until an admin lifts the suspension.")
	return true, nil
}

// Unsuspend lifts a suspension.
func (s *Service) Unsuspend(ctx context.Context, user, actor string) (bool, error) {
	s.mu.Lock()
	_, ok := s.suspended[user]
	delete(s.suspended, user)
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := s.store.exec(ctx, deleteSuspendQuery, user); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.cleared[user] = s.now()
	s.mu.Unlock()
	s.decide(ctx, matrixKey(user), actionUnsuspend, actor, "")
	s.notifyUser(ctx, user, "An admin lifted your suspension: you can use the bridge again.")
	return true, nil
}

const (
	actorScore      = "score"
	actionUnsuspend = "unsuspend"
)

// Evaluate computes a person's score and suspends a Matrix user whose
// score reached safety.suspend_score, telling the admins and the user.
// After an admin lifted a suspension, only newer signals count toward
// another one.
func (s *Service) Evaluate(ctx context.Context, subject string) (int, Input, error) {
	in, err := s.Input(ctx, subject)
	if err != nil {
		return 0, in, err
	}
	score := Score(in)
	user, isUser := userOfKey(subject)
	if s.cfg.SuspendScore <= 0 || score < s.cfg.SuspendScore || !isUser || s.IsSuspended(user) {
		return score, in, nil
	}
	s.mu.RLock()
	cleared, wasCleared := s.cleared[user]
	s.mu.RUnlock()
	if wasCleared && cleared.After(s.now().Add(-s.window())) {
		since, err := s.store.input(ctx, subject, cleared.Add(time.Millisecond))
		if err != nil {
			return score, in, err
		}
		if Score(since) < s.cfg.SuspendScore {
			return score, in, nil
		}
	}
	reason := fmt.Sprintf("abuse score %d reached the threshold %d", score, s.cfg.SuspendScore)
	if ok, err := s.Suspend(ctx, user, actorScore, reason, score); err != nil || !ok {
		return score, in, err
	}
	s.notifyAdmins(ctx, fmt.Sprintf("🚩 %s was suspended automatically pending your review: %s. Signals (last %s): %s. "+
		"Use `admin unsuspend %s` to lift it.", user, reason, windowText(s.window()), in.Summary(), user))
	return score, in, nil
}

// Input is a person's score input: persisted signals in the window plus
// recent activity.
func (s *Service) Input(ctx context.Context, subject string) (Input, error) {
	in, err := s.store.input(ctx, subject, s.now().Add(-s.window()))
	if err != nil {
		return in, err
	}
	in.Outbound, in.Unanswered = s.act.outbound(subject)
	return in, nil
}

// evaluateAsync evaluates after a signal without holding up the caller's
// answer on errors.
func (s *Service) evaluate(ctx context.Context, subject string) {
	if _, _, err := s.Evaluate(ctx, subject); err != nil {
		s.log.Warn().Err(err).Msg("Failed to evaluate abuse score")
	}
}

func (s *Service) signal(ctx context.Context, subject, kind, scope string) {
	if err := s.store.signal(ctx, subject, kind, scope, s.now()); err != nil {
		s.log.Warn().Err(err).Str("kind", kind).Msg("Failed to record safety signal")
	}
}
