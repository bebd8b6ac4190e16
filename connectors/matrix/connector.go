// Package matrix is switchboard's Matrix connector: an application service
// on the homeserver. Each Matrix leg of a conversation is a portal room the
// bot created; contacts from other networks appear in it as ghost users
// whose localparts are keyed hashes (never phone numbers). The homeserver
// pushes events through the appservice API (AppserviceHandler), which the
// daemon serves on appservice.listen; the connector sends as the bot and
// its ghosts with the as_token.
//
// ChatIDs are room IDs and RemoteIDs are event IDs.
//
// Wiring it into the daemon:
//
//	conn, err := matrix.New(matrix.Config{…}, db, log) // no I/O
//	router.Register(conn)                          // before router.Start
//	conn.SetCommands(registry)                     // commands.Registry: start, link, login…
//	mux.Handle("/_matrix/app/", conn.AppserviceHandler())
//	router.Start(ctx)                              // runs Start: migrations (sb_matrix_version), homeserver check
//
// End-to-end encryption (an Olm account for the bot in the shared database,
// a /sync loop as the bot, Megolm for portals) is compiled in with the
// goolm build tag and enabled by encryption.allow; the same /sync loop
// brings typing notifications, read receipts and redactions, which
// Dendrite leaves out of appservice transactions. Without the tag the
// connector refuses to send into encrypted rooms and tells senders of
// encrypted messages that it cannot read them.
package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/phone"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// MaxMediaSize bounds attachments the connector uploads or downloads.
const MaxMediaSize = 100 << 20

// connectTimeout bounds the first contact with the homeserver in Start;
// after that the connector keeps retrying in the background.
const connectTimeout = 10 * time.Second

// Config is everything the Matrix connector reads from the configuration:
// its own sections and the few settings of other owners it depends on.
// The daemon fills it from the loaded file.
type Config struct {
	// Homeserver is the homeserver section: its address and domain.
	Homeserver config.Homeserver
	// Appservice is the appservice section: the tokens, the bot's name and
	// the ghosts' prefix (its registration is Appservice.Registration).
	Appservice config.Appservice
	// Encryption is the encryption section: whether portals are
	// end-to-end encrypted, and the key of the bot's crypto store.
	Encryption config.Encryption
	// Permissions is the permissions section: the level of each Matrix
	// user for the bot's commands.
	Permissions config.Permissions
	// Secret is identity.secret; the ghosts' opaque localparts are
	// derived from it.
	Secret string
	// Lease is delivery.lease: how long this process holds the bot's
	// crypto device before another may take it over (0: 30s).
	Lease time.Duration
}

// Connector is the Matrix connector. Create it with New.
type Connector struct {
	cfg      Config
	log      zerolog.Logger
	rawDB    *dbutil.Database
	db       *dbutil.Database
	as       *appservice.AppService
	bot      id.UserID
	ghostKey []byte
	host     bridge.Host
	hsToken  []byte
	crypto   cryptor
	// cs is the state of end-to-end encryption in this process (crypto.go).
	cs cryptoState

	mu      sync.RWMutex
	running bool
	health  bridge.Health
	ident   *identity.Store
	// cmds answers bot commands (SetCommands).
	cmds     *commands.Registry
	legTimer LegTimerFunc
	// legLister lists a portal's conversation legs (SetLegLister).
	legLister LegLister
	// statuses queues message send status events (sendstatus.go).
	statuses sendStatuses
	// puppets caches double puppeting opt-ins and intents (doublepuppet.go).
	puppets puppets
	members map[memberKey]string
	crypted map[id.RoomID]bool
	typers  map[typerKey]id.UserID
	typing  map[id.RoomID]map[id.UserID]bool
	// adminNotify tells admins about set-aside events (SetAdminNotifier).
	adminNotify AdminNotifier
	// failed counts transient failures per event (see processEvent).
	failed failures
	// portals and mgmtRooms cache the per-message room look-ups (db.go).
	portals   roomCache[*portalInfo]
	mgmtRooms roomCache[id.UserID]
	// txns remembers acknowledged transactions (txnmark.go).
	txns *txnMarks
	// inboxMu serializes feeding kept encryption traffic (cryptoinbox.go).
	inboxMu sync.Mutex
	// pushes notices a homeserver that pushes no encryption traffic (astxn.go).
	pushes pushCheck

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	// group is chat info and spaces' state (groupinfo.go, space.go).
	group groupState
}

type typerKey struct {
	room   id.RoomID
	remote bridge.UserID
}

type memberKey struct {
	room id.RoomID
	user id.UserID
}

var (
	_ bridge.Connector          = (*Connector)(nil)
	_ bridge.EditSender         = (*Connector)(nil)
	_ bridge.ReactionSender     = (*Connector)(nil)
	_ bridge.DeleteSender       = (*Connector)(nil)
	_ bridge.ReadReceiptSender  = (*Connector)(nil)
	_ bridge.TypingSender       = (*Connector)(nil)
	_ bridge.MediaSender        = (*Connector)(nil)
	_ bridge.MediaDownloader    = (*Connector)(nil)
	_ bridge.StatusReceiver     = (*Connector)(nil)
	_ bridge.EncryptionReporter = (*Connector)(nil)
	_ bridge.HealthReporter     = (*Connector)(nil)
)

// New creates the connector from its configuration. db is the shared
// database; Start runs the connector's migrations on it (version table
// sb_matrix_version). New does no I/O.
func New(cfg Config, db *dbutil.Database, log zerolog.Logger) (*Connector, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is required", ErrConfig)
	}
	for key, val := range map[string]string{
		"homeserver.address":      cfg.Homeserver.Address,
		"homeserver.domain":       cfg.Homeserver.Domain,
		"appservice.bot_username": cfg.Appservice.BotUsername,
		"appservice.ghost_prefix": cfg.Appservice.GhostPrefix,
		"appservice.as_token":     cfg.Appservice.ASToken,
		"appservice.hs_token":     cfg.Appservice.HSToken,
		"identity.secret":         cfg.Secret,
	} {
		if val == "" || val == "generate" {
			return nil, fmt.Errorf("%w: %s is not set", ErrConfig, key)
		}
	}
	reg := cfg.Appservice.Registration(cfg.Homeserver.Domain)
	as, err := appservice.CreateFull(appservice.CreateOpts{
		Registration:     reg,
		HomeserverDomain: cfg.Homeserver.Domain,
		HomeserverURL:    cfg.Homeserver.Address,
		StateStore:       newStateStore(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log = log.With().Str("network", string(bridge.NetworkMatrix)).Logger()
	as.Log = log.With().Str("component", "mautrix").Logger()
	as.DefaultHTTPRetries = 2
	as.UserAgent = "switchboard " + mautrix.DefaultUserAgent
	// Marks what double puppets send (doublepuppet.go).
	as.DoublePuppetValue = cfg.Appservice.ID
	c := &Connector{
		cfg:      cfg,
		log:      log,
		rawDB:    db,
		as:       as,
		bot:      cfg.Appservice.BotUserID(cfg.Homeserver.Domain),
		ghostKey: deriveKey([]byte(cfg.Secret), ghostKeyLabel),
		hsToken:  []byte(cfg.Appservice.HSToken),
		health:   bridge.Health{State: bridge.HealthStarting},
		members:  make(map[memberKey]string),
		crypted:  make(map[id.RoomID]bool),
		typers:   make(map[typerKey]id.UserID),
		typing:   make(map[id.RoomID]map[id.UserID]bool),
		txns:     newTxnMarks(),
	}
	if c.crypto, err = newCryptor(c); err != nil {
		return nil, err
	}
	c.cs.xs.password = cfg.Encryption.BotPassword
	return c, nil
}

// Network implements bridge.Connector.
func (c *Connector) Network() bridge.NetworkID { return bridge.NetworkMatrix }

// Init implements bridge.Connector.
func (c *Connector) Init(host bridge.Host) {
	c.host = host
	if l := host.Log(); l != nil {
		c.log = l.With().Logger()
		c.as.Log = c.log.With().Str("component", "mautrix").Logger()
	}
}

// BotUserID returns the bridge bot's Matrix user ID.
func (c *Connector) BotUserID() id.UserID { return c.bot }

// Start runs the connector's migrations, then contacts the homeserver: it
// learns the spec versions (for authenticated media) and makes sure the
// bot exists with its display name. If the homeserver is unreachable, Start
// still succeeds; the connector reports itself degraded and keeps trying.
func (c *Connector) Start(ctx context.Context) error {
	db, err := database.Upgrade(ctx, c.rawDB, migrations.Matrix, c.log)
	if err != nil {
		return err
	}
	c.db = db
	if err = c.prune(ctx); err != nil {
		c.log.Warn().Err(err).Msg("Failed to prune handled transactions")
	}
	c.bgCtx, c.bgCancel = context.WithCancel(c.log.WithContext(context.Background()))
	c.bg.Add(1)
	go c.txnMarkLoop(c.bgCtx)
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = c.connect(cctx)
	cancel()
	if err != nil {
		c.log.Warn().Err(err).Msg("Homeserver not reachable yet, retrying in the background")
		c.setHealth(bridge.HealthDegraded, "homeserver unreachable: "+phone.Redact(err.Error()))
		c.bg.Add(1)
		go c.reconnectLoop()
	}
	return nil
}

func (c *Connector) reconnectLoop() {
	defer c.bg.Done()
	wait := time.Second
	for {
		select {
		case <-c.bgCtx.Done():
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(c.bgCtx, connectTimeout)
		err := c.connect(ctx)
		cancel()
		if err == nil {
			return
		}
		c.setHealth(bridge.HealthDegraded, "homeserver unreachable: "+phone.Redact(err.Error()))
		wait = min(wait*2, time.Minute)
	}
}

// connect checks the homeserver and the bot's account.
func (c *Connector) connect(ctx context.Context) error {
	// One attempt per request: the caller retries with its own backoff.
	ctx = mautrix.WithMaxRetries(c.mctx(ctx), 0)
	bot := c.as.BotIntent()
	versions, err := bot.Versions(ctx)
	if err != nil {
		return classify("versions", err)
	}
	*c.as.SpecVersions = *versions
	if _, err = bot.Whoami(ctx); err != nil {
		if !isStatus(err, http.StatusUnauthorized) && !isStatus(err, http.StatusForbidden) {
			return classify("whoami", err)
		}
		c.setHealth(bridge.HealthBadCredential, "the homeserver refused the as_token; is registration.yaml installed?")
		return classify("whoami", err)
	}
	if name := c.cfg.Appservice.BotDisplayname; name != "" {
		var current *mautrix.RespUserDisplayName
		current, err = bot.GetDisplayName(ctx, c.bot)
		if err != nil || current.DisplayName != name {
			if err = bot.SetDisplayName(ctx, name); err != nil {
				c.log.Warn().Err(err).Msg("Failed to set the bot's display name")
			}
		}
	}
	if err = c.startCrypto(ctx); err != nil {
		c.setHealth(bridge.HealthDegraded, "end-to-end encryption unavailable: "+phone.Redact(err.Error()))
		return err
	}
	c.setHealth(bridge.HealthOK, "")
	c.startBackground(c.backfillBridgeInfo)
	c.log.Info().Str("bot", c.bot.String()).Bool("encryption", c.crypto != nil).Msg("Connected to the homeserver")
	return nil
}

func isStatus(err error, status int) bool {
	var httpErr mautrix.HTTPError
	return errors.As(err, &httpErr) && httpErr.Response != nil && httpErr.Response.StatusCode == status
}

// Stop implements bridge.Connector: it stops background work and makes the
// appservice API answer 503 so the homeserver retries later.
func (c *Connector) Stop(context.Context) error {
	c.mu.Lock()
	c.running = false
	c.health = bridge.Health{State: bridge.HealthDown, Message: "stopped"}
	c.mu.Unlock()
	if c.bgCancel != nil {
		c.bgCancel()
	}
	c.bg.Wait()
	c.stopCrypto()
	return nil
}

func (c *Connector) isRunning() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.running
}

func (c *Connector) setHealth(state bridge.HealthState, msg string) {
	c.mu.Lock()
	if c.running {
		c.health = bridge.Health{State: state, Message: msg}
	}
	c.mu.Unlock()
}

// Health implements bridge.HealthReporter.
func (c *Connector) Health(context.Context) bridge.Health {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cryptoHealth(c.health)
}

// roomID checks that a chat ID is a room ID.
func roomID(chat bridge.ChatID) (id.RoomID, error) {
	if !strings.HasPrefix(string(chat), "!") || !strings.Contains(string(chat), ":") {
		return "", bridge.Permanent(fmt.Errorf("%w: %q", ErrInvalidChat, chat))
	}
	return id.RoomID(chat), nil
}

func roomIDOrEmpty(chat bridge.ChatID) id.RoomID {
	room, _ := roomID(chat)
	return room
}

func eventID(remote bridge.RemoteID) (id.EventID, error) {
	if !strings.HasPrefix(string(remote), "$") {
		return "", bridge.Permanent(fmt.Errorf("%w: %q", ErrInvalidRemoteID, remote))
	}
	return id.EventID(remote), nil
}
