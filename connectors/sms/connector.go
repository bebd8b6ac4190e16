// Package sms is switchboard's SMS connector: Twilio's Messages API for
// sending, signed webhooks for receiving and for delivery status.
//
// Privacy: phone numbers are never logged and never stored in plaintext.
// A chat (bridge.ChatID) is an opaque keyed hash of (contact, pool number,
// conversation); the contact's number is stored AES-256-GCM encrypted with
// a key derived from identity.secret, next to an HMAC used for look-ups.
// Senders of inbound SMS appear under their identity pseudonym ("Contact k3f9q2"),
// the same they have on every phone network.
//
// Number pool: each (contact, conversation) pair gets a pool number the
// contact does not already use with another conversation, so a reply to
// that number reaches the right conversation (the number-masking model of
// Twilio Proxy). When the pool is exhausted for a contact, the new
// conversation shares the pool number of the contact's most recently active
// conversation; a reply to a shared number goes to whichever of its
// conversations last sent to the contact. Hooks.OnPoolShared (and
// SharedWith) let the caller tell the conversations concerned.
//
// MMS: SendMedia sends attachments to US and Canadian numbers (up to 5 MB,
// of the types Twilio accepts). Twilio fetches the attachment from
// sms.public_url + "/sms/media/<token>" (RouteMedia); the random token is
// kept in memory only, for 10 minutes and a few fetches, and the bytes are
// streamed from the source connector at fetch time, never stored.
//
// Pacing: each pool number sends one segment per
// safety.sms_segment_interval (safety.sms_number_intervals per number; a
// long code manages about one a second). A delivery that would go out
// early returns bridge.Paced, so it waits in the router's durable queue —
// never dropped, never counted as a failed attempt — until its slot.
// Hooks.BeforeSend (the safety service) then sees the destination's region
// and whether it matches safety.high_cost_prefixes, never the number.
//
// Wiring (the daemon's part):
//
//	c, err := sms.New(sms.Config{SMS: cfg.SMS, Secret: …, …}, db, log) // no I/O
//	c.SetHooks(sms.Hooks{OnStatus: …, OnPoolShared: …, OnUnrouted: …, IsGroup: …})
//	c.RegisterMetrics(registry)
//	router.Register(c)                      // Start runs the sb_sms_version migrations
//	for pattern, h := range c.Routes() { mux.Handle(pattern, h) }
//	chat, err := c.ChatFor(ctx, "+14155550100", conv) // then router.AddLeg(ctx, conv, bridge.Leg{Network: "sms", Chat: chat})
package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/periodic"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// Route patterns (Go 1.22 ServeMux syntax) of the webhooks, relative to
// sms.public_url.
const (
	RouteIncoming = "POST /sms/twilio/incoming"
	RouteStatus   = "POST /sms/twilio/status"

	pathIncoming = "/sms/twilio/incoming"
	pathStatus   = "/sms/twilio/status"
)

// Hooks are the daemon's side of events the router does not carry. Every
// hook is optional; set them with SetHooks before Start. Hooks run on the
// webhook's or the delivery's goroutine and should return quickly.
type Hooks struct {
	// OnStatus receives Twilio status callbacks for messages the bridge
	// sent. state is one of the Status constants; StatusDelivered and
	// StatusFailed equal bridge.StateDelivered and bridge.StateFailed.
	// errorCode is Twilio's ErrorCode ("" if none).
	OnStatus func(ctx context.Context, conv bridge.ConversationID, msg bridge.MessageID, state string, errorCode string)
	// OnPoolShared is called when ChatFor had to give conv a pool number
	// already used with the same contact by the conversations in others
	// (the pool is exhausted). Replies on that number now go to conv until
	// another of them sends; tell the others.
	OnPoolShared func(ctx context.Context, conv bridge.ConversationID, others []bridge.ConversationID)
	// OnUnrouted is called when a contact texts a pool number that no
	// conversation uses with them. It may create a conversation holding
	// the leg {sms, chat} (or add the leg to one) and return its ID; the
	// message is then delivered there. Without it, or if it fails, the
	// message is dropped (and logged without the number).
	OnUnrouted func(ctx context.Context, chat bridge.ChatID, pool string) (bridge.ConversationID, error)
	// OnStranger is called when a message reaches nobody (no
	// conversation, and OnUnrouted did not open one): contact is the
	// sender's pseudonym, pool the number they wrote to. The message is
	// not kept; the contact gets an automatic reply at most hourly. Tell
	// the admins (without content).
	OnStranger func(ctx context.Context, contact bridge.Sender, pool string)
	// IsGroup tells whether a conversation has more than one participant
	// besides the SMS contact; messages to the contact are then prefixed
	// with the sender's display name. Nil: never prefixed.
	IsGroup func(ctx context.Context, conv bridge.ConversationID) bool
	// BeforeSend is asked once per delivery, when its pacing slot has come
	// and before Twilio is called (the safety service's high-cost limit).
	// An error is returned to the router as it is (wrap it with
	// bridge.Permanent to refuse the message for good).
	BeforeSend func(ctx context.Context, info SendInfo) error
}

// SendInfo describes an SMS about to be sent, for Hooks.BeforeSend. It
// holds no number: only the destination's region and whether it matches
// safety.high_cost_prefixes.
type SendInfo struct {
	Sender        bridge.UserID
	SenderNetwork bridge.NetworkID
	Conversation  bridge.ConversationID
	Region        string
	HighCost      bool
	Segments      int
}

// Config is everything the SMS connector reads from the configuration:
// its own section and the few settings of other owners it depends on. The
// daemon fills it from the loaded file.
type Config struct {
	// SMS is the connector's own section (sms:).
	SMS config.SMS
	// Secret is identity.secret; the keys that hash and seal phone numbers
	// are derived from it.
	Secret string
	// MetadataRetention is retention.metadata: how long delivery metadata
	// (message references, statuses) is kept.
	MetadataRetention time.Duration
	// Pacing is safety's pacing of each pool number.
	Pacing Pacing
	// HighCostPrefixes is safety.high_cost_prefixes: E.164 prefixes
	// Hooks.BeforeSend is told a destination matches (SendInfo.HighCost).
	HighCostPrefixes []string
}

// Pacing is how fast each pool number may send.
type Pacing struct {
	// SegmentInterval is safety.sms_segment_interval: the time between
	// segments sent from one pool number; 0 means no pacing.
	SegmentInterval time.Duration
	// NumberIntervals is safety.sms_number_intervals: SegmentInterval for
	// particular pool numbers, keyed by E.164 number.
	NumberIntervals map[string]time.Duration
}

// Connector is the SMS connector.
type Connector struct {
	cfg       config.SMS
	publicURL string
	// statusURL is where Twilio reports a sent message's status.
	statusURL string
	apiURL    *url.URL
	keys      *keys
	db        *dbutil.Database
	log       zerolog.Logger
	host      bridge.Host
	metadata  time.Duration
	now       func() time.Time

	twilio    *twilio.RestClient
	validator client.RequestValidator
	transport *rewriteTransport
	// pool maps pool_hash to the E.164 pool number, in config order.
	pool      map[string]string
	poolOrder []string

	hooks   Hooks
	metrics *metrics
	pacer   *pacer
	// highCost are safety.high_cost_prefixes.
	highCost []string
	// opened caches what sends need from chat rows (chatcache.go).
	opened openChats
	// unsettled are sent SMS whose rows wait for the router's commit
	// (sent.go).
	unsettled unsettledSIDs
	// groups caches Hooks.IsGroup (groups.go).
	groups groupCache
	// stmts are the send path's prepared statements (stmt.go).
	stmts *sendStmts
	// local is true on SQLite, whose database this process alone uses:
	// opt-outs and the deliveries that may have parts already sent are
	// then known in memory (sendstate.go).
	local   bool
	optOuts optOutCache
	resumes resumeFence
	// media holds the tokens of outbound MMS attachments (memory only).
	media mediaTokens
	// spool keeps inbound webhooks while the database is unavailable
	// (nil without SetSpool).
	spoolPath string
	spool     *spool
	spoolKick chan struct{}
	// told is when each stranger (contact hash and pool hash) last got
	// the automatic reply.
	toldMu sync.Mutex
	told   map[string]time.Time

	mu     sync.Mutex
	health bridge.Health
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

var (
	_ bridge.Connector          = (*Connector)(nil)
	_ bridge.MediaDownloader    = (*Connector)(nil)
	_ bridge.MediaSender        = (*Connector)(nil)
	_ bridge.HealthReporter     = (*Connector)(nil)
	_ bridge.EncryptionReporter = (*Connector)(nil)
)

// IsEncrypted implements bridge.EncryptionReporter: SMS never is, so the
// core can disclose it before a conversation uses SMS.
func (c *Connector) IsEncrypted(context.Context, bridge.ChatID) (bool, error) { return false, nil }

// New validates the SMS configuration and builds the connector. It does no
// I/O; Start runs the migrations (version table sb_sms_version).
func New(cfg Config, db *dbutil.Database, log zerolog.Logger) (*Connector, error) {
	if db == nil {
		return nil, errors.New("sms: database is required")
	}
	s := cfg.SMS
	k, err := deriveKeys(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if s.Twilio.AccountSID == "" || s.Twilio.AuthToken == "" {
		return nil, errors.New("sms: sms.twilio.account_sid and sms.twilio.auth_token are required")
	}
	pub, err := url.Parse(s.PublicURL)
	if err != nil || (pub.Scheme != "https" && pub.Scheme != "http") || pub.Host == "" {
		return nil, errors.New("sms: sms.public_url must be an http(s) URL")
	}
	apiRaw := s.Twilio.APIURL
	if apiRaw == "" {
		apiRaw = "https://api.twilio.com"
	}
	api, err := url.Parse(apiRaw)
	if err != nil || (api.Scheme != "https" && api.Scheme != "http") || api.Host == "" {
		return nil, errors.New("sms: sms.twilio.api_url must be an http(s) URL")
	}
	if len(s.Twilio.Numbers) == 0 {
		return nil, ErrEmptyPool
	}
	c := &Connector{
		stmts:     newSendStmts(),
		cfg:       s,
		publicURL: strings.TrimRight(s.PublicURL, "/"),
		apiURL:    api,
		keys:      k,
		db:        db,
		log:       log.With().Str("component", "sms").Logger(),
		metadata:  cfg.MetadataRetention,
		now:       time.Now,
		validator: client.NewRequestValidator(s.Twilio.AuthToken),
		pool:      make(map[string]string, len(s.Twilio.Numbers)),
		metrics:   newMetrics(),
		health:    bridge.Health{State: bridge.HealthStarting},
		spoolKick: make(chan struct{}, 1),
		local:     db.Dialect == dbutil.SQLite,
	}
	c.statusURL = c.publicURL + pathStatus
	for i, n := range s.Twilio.Numbers {
		e164, _, err := readNumber(n)
		if err != nil {
			return nil, fmt.Errorf("sms.twilio.numbers[%d]: %w", i, err)
		}
		h := k.poolHash(e164)
		if _, dup := c.pool[h]; dup {
			return nil, fmt.Errorf("sms.twilio.numbers[%d]: listed twice", i)
		}
		c.pool[h] = e164
		c.poolOrder = append(c.poolOrder, h)
	}
	c.pacer = newPacer(cfg.Pacing, c.pool)
	c.highCost = cfg.HighCostPrefixes
	c.transport = &rewriteTransport{base: newTwilioTransport(), target: api, prefix: strings.TrimRight(api.Path, "/")}
	httpc := &client.Client{
		Credentials: client.NewCredentials(s.Twilio.AccountSID, s.Twilio.AuthToken),
		HTTPClient: &http.Client{
			Transport: c.transport,
			Timeout:   30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	httpc.SetAccountSid(s.Twilio.AccountSID)
	c.twilio = twilio.NewRestClientWithParams(twilio.ClientParams{Client: httpc})
	return c, nil
}

// SetHooks installs the daemon's hooks. Call before Start.
func (c *Connector) SetHooks(h Hooks) {
	c.hooks = h
	c.groups.forget("", true)
}

// Hooks returns the installed hooks, so one more can be added with SetHooks.
func (c *Connector) Hooks() Hooks { return c.hooks }

// RegisterMetrics registers the connector's Prometheus metrics
// (sb_sms_segments_total, sb_sms_messages_total, sb_sms_mms_total,
// sb_sms_media_fetches_total).
func (c *Connector) RegisterMetrics(reg prometheus.Registerer) error {
	return c.metrics.register(reg)
}

// Network implements bridge.Connector.
func (c *Connector) Network() bridge.NetworkID { return bridge.NetworkSMS }

// Init implements bridge.Connector.
func (c *Connector) Init(host bridge.Host) { c.host = host }

// Start runs the SMS migrations and starts pruning the sent-message map
// after retention.metadata. It makes no Twilio call.
func (c *Connector) Start(ctx context.Context) error {
	db, err := database.Upgrade(ctx, c.db, migrations.SMS, c.log)
	if err != nil {
		return err
	}
	c.db = db
	c.readResumeFence(ctx)
	if c.spoolPath != "" {
		sp, err := openSpool(c.spoolPath, c.keys.spool, c.log)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.spool = sp
		c.mu.Unlock()
		if n := c.spool.n.Load(); n > 0 {
			c.log.Info().Int64("waiting", n).Msg("Inbound SMS kept in the spool will be handled now")
		}
	}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	if c.metadata > 0 {
		c.bg.Add(1)
		go c.pruneLoop(bgCtx)
	}
	if c.spool != nil {
		c.bg.Add(1)
		go c.spoolLoop(bgCtx)
	}
	c.setHealth(bridge.HealthOK, "")
	return nil
}

// Stop implements bridge.Connector.
func (c *Connector) Stop(context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.bg.Wait()
	c.resumes.set(0, false)
	c.stmts.close()
	c.media.clear()
	c.spool.close()
	c.setHealth(bridge.HealthDown, "stopped")
	return nil
}

// Health implements bridge.HealthReporter. Inbound SMS waiting in the
// spool make it degraded.
func (c *Connector) Health(context.Context) bridge.Health {
	c.mu.Lock()
	h, sp := c.health, c.spool
	c.mu.Unlock()
	if h.State == bridge.HealthOK && sp != nil && sp.pending() {
		h = bridge.Health{State: bridge.HealthDegraded, Message: "inbound SMS are kept in the spool until the database accepts them"}
	}
	return h
}

func (c *Connector) setHealth(state bridge.HealthState, msg string) {
	c.mu.Lock()
	c.health = bridge.Health{State: state, Message: msg}
	c.mu.Unlock()
}

// Routes returns the webhook handlers and the MMS media route (RouteMedia,
// from which Twilio fetches outbound attachments), keyed by ServeMux
// pattern. The daemon mounts them on appservice.listen; sms.public_url must
// reach them at the same paths.
func (c *Connector) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		RouteIncoming: http.HandlerFunc(c.handleIncoming),
		RouteStatus:   http.HandlerFunc(c.handleStatus),
		RouteMedia:    http.HandlerFunc(c.handleMedia),
	}
}

func (c *Connector) pruneLoop(ctx context.Context) {
	defer c.bg.Done()
	periodic.Run(ctx, min(c.metadata/4+time.Second, time.Hour), c.Prune)
}

// Prune deletes sent-message rows older than retention.metadata.
func (c *Connector) Prune(ctx context.Context) {
	if c.metadata <= 0 {
		return
	}
	cutoff := c.now().Add(-c.metadata).UnixMilli()
	if _, err := c.db.Exec(ctx, pruneSentQuery, cutoff); err != nil {
		c.log.Warn().Err(err).Msg("Failed to prune SMS delivery metadata")
	}
}

// ChatFor returns the SMS chat through which conversation conv reaches the
// contact, creating it on first use. The number is validated and
// normalized to E.164 and must be in sms.allowed_countries (else a
// *CountryError, ErrCountryNotAllowed). A new chat gets a pool number the
// contact does not use with another conversation; when none is free the
// pool number of the contact's most recently active conversation is
// shared, and Hooks.OnPoolShared is told (see SharedWith).
func (c *Connector) ChatFor(ctx context.Context, contact string, conv bridge.ConversationID) (bridge.ChatID, error) {
	if conv == "" {
		return "", errors.New("sms: ChatFor needs a conversation")
	}
	e164, region, err := readNumber(contact)
	if err != nil {
		return "", err
	}
	if err = checkCountry(region, c.cfg.AllowedCountries); err != nil {
		return "", err
	}
	if _, own := c.pool[c.keys.poolHash(e164)]; own {
		return "", fmt.Errorf("%w: it is one of the bridge's own pool numbers", ErrInvalidNumber)
	}
	hash := c.keys.contactHash(e164)
	var chat bridge.ChatID
	var shared []bridge.ConversationID
	err = c.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		shared = nil
		err := c.db.QueryRow(ctx, chatByConvQuery, hash, conv).Scan(&chat)
		if err == nil {
			return nil
		} else if !errors.Is(err, sqlNoRows) {
			return err
		}
		used := make(map[string][]bridge.ConversationID)
		var recentPool string
		rows, err := c.db.Query(ctx, contactChatsQuery, hash)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, pool string
			var other bridge.ConversationID
			if err = rows.Scan(&id, &pool, &other); err != nil {
				rows.Close()
				return err
			}
			if _, ok := c.pool[pool]; !ok {
				continue // a number no longer configured
			}
			if recentPool == "" {
				recentPool = pool
			}
			used[pool] = append(used[pool], other)
		}
		rows.Close()
		if err = rows.Err(); err != nil {
			return err
		}
		pool := ""
		for _, p := range c.poolOrder {
			if _, taken := used[p]; !taken {
				pool = p
				break
			}
		}
		if pool == "" {
			pool, shared = recentPool, used[recentPool]
		}
		chat = bridge.ChatID(c.keys.chatID(e164, c.pool[pool], string(conv)))
		_, err = c.db.Exec(ctx, insertChatQuery, chat, hash, c.keys.seal(e164, hash), pool, conv, c.now().UnixMilli())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%w: assign sms chat: %w", bridge.ErrDatabase, err)
	}
	if len(shared) > 0 {
		c.log.Warn().Str("contact", c.keys.logRef(e164)).Int("pool_size", len(c.pool)).
			Int("sharing", len(shared)+1).Msg("SMS number pool exhausted for contact; sharing the pool number of their most recent conversation")
		if c.hooks.OnPoolShared != nil {
			c.hooks.OnPoolShared(ctx, conv, shared)
		}
	}
	return chat, nil
}

// SharedWith lists the other conversations that reach the same contact
// through the same pool number as chat (empty unless the pool was
// exhausted).
func (c *Connector) SharedWith(ctx context.Context, chat bridge.ChatID) ([]bridge.ConversationID, error) {
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		return nil, err
	}
	rows, err := c.db.Query(ctx, sharingQuery, row.contactHash, row.poolHash, chat)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bridge.ErrDatabase, err)
	}
	defer rows.Close()
	var out []bridge.ConversationID
	for rows.Next() {
		var id bridge.ConversationID
		if err = rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ContactOf returns the contact an SMS chat reaches, as a pseudonymous
// Sender (the ID inbound messages from them carry), or false for an
// unknown chat.
func (c *Connector) ContactOf(ctx context.Context, chat bridge.ChatID) (bridge.Sender, bool, error) {
	row, err := c.loadChat(ctx, chat)
	if errors.Is(err, ErrUnknownChat) {
		return bridge.Sender{}, false, nil
	} else if err != nil {
		return bridge.Sender{}, false, err
	}
	number, err := c.keys.open(row.contactEnc, row.contactHash)
	if err != nil {
		return bridge.Sender{}, false, err
	}
	id, name := c.keys.pseudonym(number)
	return bridge.Sender{ID: bridge.UserID(id), DisplayName: name}, true, nil
}

// PoolNumber returns the pool number (the bridge's own number) a chat
// sends from. It is safe to show: it is not the contact's.
func (c *Connector) PoolNumber(ctx context.Context, chat bridge.ChatID) (string, error) {
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		return "", err
	}
	n, ok := c.pool[row.poolHash]
	if !ok {
		return "", ErrPoolNumberGone
	}
	return n, nil
}

// rewriteTransport sends twilio-go's requests (always to
// https://api.twilio.com) to sms.twilio.api_url instead, and remembers the
// last Retry-After of a 429.
type rewriteTransport struct {
	base   http.RoundTripper
	target *url.URL
	// prefix is target's path without its trailing slash.
	prefix     string
	mu         sync.Mutex
	retryAfter time.Duration
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A shallow copy with its own URL: the request is not modified, and
	// nothing here or in the base transport writes its headers, so they
	// need no deep copy (req.Clone copied them for every SMS).
	r := *req
	u := *req.URL
	r.URL = &u
	u.Scheme = t.target.Scheme
	u.Host = t.target.Host
	if t.prefix != "" {
		u.Path = t.prefix + u.Path
	}
	r.Host = t.target.Host
	resp, err := t.base.RoundTrip(&r)
	if err == nil && resp.Body != nil {
		resp.Body = drainingBody{resp.Body}
	}
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		t.mu.Lock()
		t.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
		t.mu.Unlock()
	}
	return resp, err
}

func (t *rewriteTransport) lastRetryAfter() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retryAfter
}
