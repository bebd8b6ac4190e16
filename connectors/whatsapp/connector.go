// Package whatsapp is switchboard's WhatsApp connector, built on whatsmeow
// (a WhatsApp Web multi-device client). whatsmeow's Signal sessions are the
// encryption boundary: messages are decrypted and encrypted inside the
// connector, and plaintext exists only in memory while it crosses the
// router.
//
// Accounts: a Matrix user logs in their own WhatsApp (`login whatsapp`,
// QR code or pairing code); an admin may log in the bridge-owned relay
// account (`login whatsapp relay`), which reaches WhatsApp contacts for
// users without a login of their own and prefixes each message with the
// sender's display name. The relay's one-to-one chat with a contact
// belongs to the first conversation with them; a further conversation gets
// a group of its own that the relay creates with the contact
// (OpenPhoneGroup). Each login is one linked device; its session
// lives in whatsmeow's sqlstore tables in the bridge's database.
//
// Chats: a bridge.ChatID is an opaque keyed hash of (account, chat JID);
// the JID, whose user part is a phone number, is stored AES-256-GCM
// encrypted, with a keyed hash of the number for look-ups. Contacts appear
// under identity.Pseudonyms (the pseudonym every phone network is to share),
// with their WhatsApp push name as display name unless it looks like a
// number. Neither numbers, JIDs nor bodies are logged; whatsmeow's own log
// lines and errors are scrubbed. whatsmeow's tables keep what Signal needs
// (sessions and identities keyed by JID, the LID map) but not the address
// book. Message history is downloaded only for backfill (backfill.go:
// into Matrix portals only, within retention, never for the relay).
//
// Disappearing messages: a chat's WhatsApp timer (a protocol message, a
// group notification, or ContextInfo.Expiration on each message) becomes
// the leg's timer (Hooks.OnChatTimer, Router.SetLegTimer) and each
// message's own timer. A conversation timer set from Matrix is applied to
// the chat as the nearest timer WhatsApp offers (WhatsAppTimer); the
// bridge revokes its own messages when their retention ends.
//
// Whatsmeow behind an interface: the connector talks to Client, which
// *whatsmeow.Client satisfies, through Sessions (SQLSessions in
// production); tests use an in-memory fake with real whatsmeow types.
//
// Not bridged (see the package's tests for what is): edits, reactions and
// deletes inside a history sync (history carries messages), polls, view-once media (sent as a
// notice), contact cards (name only), members' own profile pictures.
// Group membership changes arrive as notices in the conversation
// (members.go) and as chat info (groupinfo.go): a group's name,
// description, picture and members, both ways.
//
// Message metadata: who sent each contact's group message (WhatsApp needs
// it to quote or react to the message) and which WhatsApp message each
// contact's reaction is (to bridge its removal) are kept for
// retention.metadata, the sender encrypted like chat JIDs, so replies,
// reactions and removals work across restarts.
package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/periodic"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// RelayAccount is the account name of the bridge-owned relay login (Matrix
// user IDs, the other accounts, start with "@").
const RelayAccount = "relay"

// Matrix is what the connector needs from the Matrix connector: the bot's
// notices about logins (a login's own steps go back through the command's
// reply). *matrix.Connector satisfies it.
type Matrix interface {
	NotifyUser(ctx context.Context, user id.UserID, text string) error
	NotifyRoom(ctx context.Context, room id.RoomID, text string)
}

// Unrouted is a WhatsApp chat that received a message while no
// conversation holds it.
type Unrouted struct {
	// Account received it: a Matrix user ID, or RelayAccount.
	Account string
	Chat    bridge.ChatID
	// Contact is the sender (pseudonymous ID, safe display name).
	Contact bridge.Sender
	// Group is true for a group chat; Name is then its subject.
	Group bool
	Name  string
}

// Hooks are the daemon's side of what the router does not carry. Both are
// optional; set them with SetHooks before Start.
type Hooks struct {
	// OnUnrouted may create a conversation holding {whatsapp, u.Chat} (a
	// portal for u.Account, say) and return it; the message is then
	// delivered there. Without it, or on error, the message is dropped.
	OnUnrouted func(ctx context.Context, u Unrouted) (bridge.ConversationID, error)
	// OnChatTimer records a chat's disappearing timer as its leg's timer
	// (Router.SetLegTimer); 0 clears it.
	OnChatTimer func(ctx context.Context, leg bridge.Leg, timer time.Duration) error
}

// Config is everything the WhatsApp connector reads from the
// configuration: its own section and the few settings of other owners it
// depends on. The daemon fills it from the loaded file.
type Config struct {
	// WhatsApp is the connector's own section (whatsapp:).
	WhatsApp config.WhatsApp
	// Secret is identity.secret; the keys that hash and seal chat JIDs
	// and whatsmeow's session store, and contacts' pseudonyms, are
	// derived from it.
	Secret string
	// MetadataRetention is retention.metadata: how long message metadata
	// (group senders, contacts' reactions) is kept.
	MetadataRetention time.Duration
	// AdminRoom is safety.admin_room: it receives what happens to the
	// relay account (logged out, banned, outdated); empty: only the log
	// and /health show it.
	AdminRoom id.RoomID
}

// Options are the connector's collaborators besides the config.
type Options struct {
	// Sessions makes whatsmeow clients; nil uses SQLSessions on db.
	Sessions Sessions
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RetryBase is the first reconnect delay after a failed connect
	// (default 1s; doubles up to 5m).
	RetryBase time.Duration
}

// State of one login, as whoami and /health show it.
const (
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateLoggedOut  = "logged_out"
	StateBanned     = "banned"
	StateOutdated   = "outdated"
	StateReplaced   = "replaced"
)

// login is one logged-in WhatsApp account.
type login struct {
	account string
	jid     types.JID
	client  Client
	state   string
	detail  string
	cancel  context.CancelFunc
	// failures counts connect failures since the last connection, for
	// the backoff of reconnectAfter.
	failures int
}

// Connector is the WhatsApp connector.
type Connector struct {
	cfg       config.WhatsApp
	keys      *keys
	pseudo    *identity.Pseudonyms
	db        *dbutil.Database
	log       zerolog.Logger
	host      bridge.Host
	sessions  Sessions
	hooks     Hooks
	metadata  time.Duration
	now       func() time.Time
	retryBase time.Duration
	adminRoom id.RoomID

	metrics    *metrics
	knownChats sync.Map // bridge.ChatID -> struct{}
	// senders and theirReactions are the fast path of sb_whatsapp_sender
	// and sb_whatsapp_contact_reaction (see msgrefs.go).
	senders   senderCache
	reactions reactionCache
	// theirReactions maps contacts' reactions for removals.
	theirReactions idCache
	// toldUndeliverable is when each chat was last told its messages
	// reach nobody (tellUndeliverable).
	toldMu            sync.Mutex
	toldUndeliverable map[bridge.ChatID]time.Time
	// history is the state of history backfill (backfill.go).
	history historyState
	// ownPictures are group picture IDs the bridge set (groupinfo.go).
	ownPictures sync.Map

	mu      sync.Mutex
	mx      Matrix
	logins  map[string]*login
	pending map[string]*pendingLogin
	running bool
	ctx     context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup
}

var (
	_ bridge.Connector          = (*Connector)(nil)
	_ bridge.EditSender         = (*Connector)(nil)
	_ bridge.ReactionSender     = (*Connector)(nil)
	_ bridge.DeleteSender       = (*Connector)(nil)
	_ bridge.MessageExpirer     = (*Connector)(nil)
	_ bridge.ReadReceiptSender  = (*Connector)(nil)
	_ bridge.TypingSender       = (*Connector)(nil)
	_ bridge.MediaSender        = (*Connector)(nil)
	_ bridge.MediaDownloader    = (*Connector)(nil)
	_ bridge.TimerSetter        = (*Connector)(nil)
	_ bridge.EncryptionReporter = (*Connector)(nil)
	_ bridge.HealthReporter     = (*Connector)(nil)
)

// New builds the connector. It does no I/O; Start runs the migrations
// (sb_whatsapp_version, and whatsmeow's whatsmeow_version).
func New(cfg Config, db *dbutil.Database, log zerolog.Logger, opts Options) (*Connector, error) {
	if db == nil {
		return nil, errors.New("whatsapp: database is required")
	}
	k, err := deriveKeys(cfg.Secret)
	if err != nil {
		return nil, err
	}
	pseudo, err := identity.NewPseudonyms([]byte(cfg.Secret))
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	log = log.With().Str("component", "whatsapp").Logger()
	c := &Connector{
		cfg:       cfg.WhatsApp,
		keys:      k,
		pseudo:    pseudo,
		db:        db,
		log:       log,
		sessions:  opts.Sessions,
		metadata:  cfg.MetadataRetention,
		now:       opts.Now,
		retryBase: opts.RetryBase,
		adminRoom: cfg.AdminRoom,
		logins:    map[string]*login{},
		pending:   map[string]*pendingLogin{},
	}
	if c.sessions == nil {
		if c.sessions, err = NewSQLSessions(db, cfg.Secret, log); err != nil {
			return nil, err
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.retryBase <= 0 {
		c.retryBase = time.Second
	}
	if c.cfg.LoginTimeout <= 0 {
		c.cfg.LoginTimeout = config.Duration(3 * time.Minute)
	}
	if c.cfg.DeviceName == "" {
		c.cfg.DeviceName = "switchboard"
	}
	c.senders.max = 4096
	c.metrics = newMetrics(c)
	return c, nil
}

// SetMatrix gives the connector the Matrix side it sends notices about
// logins through. Call before Start.
func (c *Connector) SetMatrix(mx Matrix) {
	c.mu.Lock()
	c.mx = mx
	c.mu.Unlock()
}

// SetHooks installs the daemon's hooks. Call before Start.
func (c *Connector) SetHooks(h Hooks) { c.hooks = h }

// Network implements bridge.Connector.
func (c *Connector) Network() bridge.NetworkID { return bridge.NetworkWhatsApp }

// Init implements bridge.Connector.
func (c *Connector) Init(host bridge.Host) { c.host = host }

// IsEncrypted implements bridge.EncryptionReporter: WhatsApp chats are
// end-to-end encrypted (Signal protocol).
func (c *Connector) IsEncrypted(context.Context, bridge.ChatID) (bool, error) { return true, nil }

// Start runs the migrations and connects every stored login. A login
// whose session is gone is deleted and its user told. Connecting happens
// in the background, with backoff.
func (c *Connector) Start(ctx context.Context) error {
	db, err := database.Upgrade(ctx, c.db, migrations.WhatsApp, c.log)
	if err != nil {
		return err
	}
	c.db = db
	if err = c.sessions.Upgrade(ctx); err != nil {
		return err
	}
	// The name the phone shows under "Linked devices" (whatsmeow keeps
	// it in a package variable, sent when a device pairs).
	store.DeviceProps.Os = proto.String(c.cfg.DeviceName)
	type stored struct{ account, enc, state string }
	rows, err := c.db.Query(ctx, loginsQuery)
	if err != nil {
		return fmt.Errorf("%w: load whatsapp logins: %w", bridge.ErrDatabase, err)
	}
	var all []stored
	for rows.Next() {
		var s stored
		if err = rows.Scan(&s.account, &s.enc, &s.state); err != nil {
			rows.Close()
			return err
		}
		all = append(all, s)
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return err
	}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.ctx, c.cancel, c.running = c.log.WithContext(bgCtx), cancel, true
	c.mu.Unlock()
	for _, s := range all {
		log := c.log.With().Str("account", c.accountRef(s.account)).Logger()
		plain, err := c.keys.open(s.enc, s.account)
		var jid types.JID
		if err == nil {
			jid, err = types.ParseJID(plain)
		}
		if err != nil {
			log.Error().Err(err).Msg("Stored WhatsApp login is unreadable; skipping it")
			continue
		}
		cli, err := c.sessions.Load(ctx, jid)
		if errors.Is(err, ErrNoSession) {
			log.Warn().Msg("WhatsApp session is gone; deleting the login")
			c.forgetLogin(ctx, s.account)
			c.tell(s.account, "Your WhatsApp session is no longer valid (it was logged out while the bridge was down). Send `login whatsapp` to log in again.")
			continue
		} else if err != nil {
			// A failed Start leaves nothing running.
			_ = c.Stop(ctx)
			return err
		}
		l := &login{account: s.account, jid: jid, client: cli, state: StateConnecting}
		if s.state == StateBanned || s.state == StateOutdated {
			l.state = s.state
		}
		c.attach(l)
		c.mu.Lock()
		c.logins[s.account] = l
		c.mu.Unlock()
		c.connect(l)
	}
	c.bg.Add(1)
	go c.pruneLoop(c.ctx)
	return nil
}

// Stop disconnects every login and ends background work.
func (c *Connector) Stop(context.Context) error {
	c.mu.Lock()
	c.running = false
	cancel := c.cancel
	logins := make([]*login, 0, len(c.logins))
	for _, l := range c.logins {
		logins = append(logins, l)
	}
	pending := make([]*pendingLogin, 0, len(c.pending))
	for _, p := range c.pending {
		pending = append(pending, p)
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, p := range pending {
		p.abort("The WhatsApp login was cancelled because the bridge is shutting down; send `login whatsapp` again once it is back.")
	}
	for _, l := range logins {
		if l.cancel != nil {
			l.cancel()
		}
		l.client.Disconnect()
	}
	c.bg.Wait()
	return nil
}

// attach installs the login's event handler. It reports failure when the
// router could not accept a message, so that (with SynchronousAck)
// whatsmeow does not acknowledge it and WhatsApp delivers it again.
func (c *Connector) attach(l *login) {
	l.client.AddEventHandlerWithSuccessStatus(func(evt any) bool { return c.handleEvent(l, evt) })
}

// connect connects a login in the background, retrying with exponential
// backoff (RetryBase doubling up to 5m) until it connects, the connector
// stops or the login ends. Once connected, whatsmeow reconnects by itself
// after a dropped connection.
func (c *Connector) connect(l *login) {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	if l.cancel != nil {
		l.cancel()
	}
	l.cancel = cancel
	// Counted while the lock is held: Stop clears running under it before
	// waiting for background work (WaitGroup.Add must not race Wait).
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		wait := c.retryBase
		for attempt := 1; ; attempt++ {
			err := l.client.Connect()
			if err == nil || errors.Is(err, whatsmeow.ErrAlreadyConnected) {
				return
			}
			c.log.Warn().Err(scrubErr(err)).Str("account", c.accountRef(l.account)).Int("attempt", attempt).
				Dur("retry_in", wait).Msg("WhatsApp connection failed; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Minute)
			c.mu.Lock()
			gone := c.logins[l.account] != l || l.state == StateLoggedOut
			c.mu.Unlock()
			if gone {
				return
			}
		}
	}()
}

// backoff is the next reconnect delay of a login: RetryBase doubling with
// each failure since it was last connected, at most 5m.
func (c *Connector) backoff(l *login) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.failures++
	return min(c.retryBase<<min(l.failures-1, 20), 5*time.Minute)
}

// reconnectAfter connects a login again after d (a ban's expiry, a
// failed connection's backoff), unless the connector stops first.
func (c *Connector) reconnectAfter(l *login, d time.Duration) {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	ctx := c.ctx
	c.bg.Add(1) // under the lock, see connect
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		c.mu.Lock()
		current := c.logins[l.account] == l
		c.mu.Unlock()
		if current && !l.client.IsConnected() {
			c.connect(l)
		}
	}()
}

// loginOf returns an account's login, or nil.
func (c *Connector) loginOf(account string) *login {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins[account]
}

// usable reports whether a login can send now.
func (l *login) usable() bool {
	return l != nil && l.state != StateLoggedOut && l.state != StateBanned && l.state != StateOutdated
}

// accountFor picks the account that carries chats for a Matrix user: their
// own login, else the relay. "" when neither is logged in.
func (c *Connector) accountFor(owner string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.logins[owner]; owner != "" && l.usable() {
		return owner
	}
	if l := c.logins[RelayAccount]; l.usable() {
		return RelayAccount
	}
	return ""
}

// setState records a login's state (in memory and in the table).
func (c *Connector) setState(ctx context.Context, l *login, state, detail string) {
	c.mu.Lock()
	changed := l.state != state
	l.state, l.detail = state, detail
	c.mu.Unlock()
	if !changed {
		return
	}
	switch state {
	case StateBanned, StateOutdated, StateConnected, StateReplaced:
		if _, err := c.db.Exec(ctx, loginStateQuery, l.account, state); err != nil {
			c.log.Warn().Err(err).Msg("Failed to record WhatsApp login state")
		}
	}
}

// forgetLogin deletes an account's login, its chats and its in-memory
// login.
func (c *Connector) forgetLogin(ctx context.Context, account string) {
	c.mu.Lock()
	delete(c.logins, account)
	c.mu.Unlock()
	if err := c.deleteAccount(ctx, account); err != nil {
		c.log.Warn().Err(err).Msg("Failed to delete WhatsApp login")
	}
}

// tell sends a notice to the account's Matrix user in the background; the
// relay's go to the admin room (Config.AdminRoom), if any.
func (c *Connector) tell(account, text string) {
	c.mu.Lock()
	mx := c.mx
	ctx := c.ctx
	if !c.running || mx == nil || ctx == nil || (account == RelayAccount && c.adminRoom == "") {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1) // under the lock, see connect
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if account == RelayAccount {
			mx.NotifyRoom(ctx, c.adminRoom, "WhatsApp relay account: "+text)
			return
		}
		if err := mx.NotifyUser(ctx, id.UserID(account), text); err != nil {
			c.log.Warn().Err(err).Msg("Could not tell a user about their WhatsApp login")
		}
	}()
}

// addBackground counts one background goroutine about to start, unless
// the connector stopped (then it reports false). The count is taken under
// the lock Stop clears running under before it waits, so it never races
// that wait.
func (c *Connector) addBackground() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return false
	}
	c.bg.Add(1)
	return true
}

// accountRef names an account in logs: Matrix user IDs are not secret,
// but keep one style for both.
func (c *Connector) accountRef(account string) string {
	if account == RelayAccount {
		return RelayAccount
	}
	return c.keys.logRef("account:" + account)
}

// Health implements bridge.HealthReporter: "ok" when every login is
// connected (or there are none), "logged_out" when the relay account was
// logged out, "degraded" when some login is banned, outdated, replaced or
// (re)connecting. The message counts logins by state.
func (c *Connector) Health(context.Context) bridge.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		if c.cancel == nil {
			return bridge.Health{State: bridge.HealthStarting}
		}
		return bridge.Health{State: bridge.HealthDown, Message: "stopped"}
	}
	counts := map[string]int{}
	state := bridge.HealthOK
	for account, l := range c.logins {
		counts[l.state]++
		switch {
		case account == RelayAccount && l.state == StateLoggedOut:
			state = bridge.HealthLoggedOut
		case account == RelayAccount && l.state == StateBanned:
			state = bridge.HealthBanned
		case l.state == StateOutdated && state == bridge.HealthOK:
			state = bridge.HealthDegraded
		case l.state != StateConnected && state == bridge.HealthOK:
			state = bridge.HealthDegraded
		}
	}
	if len(c.logins) == 0 {
		return bridge.Health{State: bridge.HealthOK, Message: "no WhatsApp logins"}
	}
	parts := make([]string, 0, len(counts))
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(s, "_", " ")))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("%d WhatsApp logins: %s", len(c.logins), strings.Join(parts, ", "))
	if relay, ok := c.logins[RelayAccount]; ok {
		msg += "; relay " + strings.ReplaceAll(relay.state, "_", " ")
	} else {
		msg += "; no relay account"
	}
	if st, ok := counts[StateOutdated]; ok && st > 0 {
		msg += " (WhatsApp says this bridge's client is outdated: update switchboard)"
	}
	return bridge.Health{State: state, Message: msg}
}

func (c *Connector) pruneLoop(ctx context.Context) {
	defer c.bg.Done()
	periodic.Run(ctx, min(c.reachTTL()/4+time.Second, time.Hour), c.Prune)
}

// Prune deletes reachability answers older than their lifetime; message
// senders, contacts' reactions and sent reactions without an expiry older
// than retention.metadata (kept when it is 0); and sent reactions a day
// past their expiry.
func (c *Connector) Prune(ctx context.Context) {
	if _, err := c.db.Exec(ctx, pruneReachQuery, c.now().Add(-c.reachTTL()).UnixMilli()); err != nil {
		c.log.Warn().Err(err).Msg("Failed to prune WhatsApp reachability cache")
	}
	metaCutoff := int64(0)
	if c.metadata > 0 {
		metaCutoff = c.now().Add(-c.metadata).UnixMilli()
		if err := c.pruneMessageRefs(ctx, metaCutoff); err != nil {
			c.log.Warn().Err(err).Msg("Failed to prune WhatsApp message metadata")
		}
		c.pruneBackfill(ctx, metaCutoff) // backfillstore.go
	}
	if err := c.pruneOwnReactions(ctx, metaCutoff); err != nil {
		c.log.Warn().Err(err).Msg("Failed to prune sent WhatsApp reactions")
	}
}

// reachTTL is how long an IsOnWhatsApp answer is used: retention.metadata,
// at most a day.
func (c *Connector) reachTTL() time.Duration {
	if c.metadata > 0 && c.metadata < 24*time.Hour {
		return c.metadata
	}
	return 24 * time.Hour
}
