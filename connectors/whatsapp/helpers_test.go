package whatsapp

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

const (
	secret = "test-identity-secret-0123456789abcdef"
	alice  = "@alice:example.org"
	bob    = "@bob:example.org"
	admin  = "@admin:example.org"

	// Numbers that must never show up in logs, names or IDs.
	aliceNumber   = "+14155550101" // alice's own WhatsApp
	relayNumber   = "+14155550109" // the relay account
	contactNumber = "+14155550177"
	otherNumber   = "+442071838750"

	netMatrix bridge.NetworkID = "matrix"
)

var (
	aliceJID   = types.NewADJID("14155550101", 0, 12)
	relayJID   = types.NewADJID("14155550109", 0, 7)
	contactJID = types.NewJID("14155550177", types.DefaultUserServer)
	otherJID   = types.NewJID("442071838750", types.DefaultUserServer)
	groupJID   = types.NewJID("120363000000000001", types.GroupServer)
)

// digitsOf is a number as it would appear in a JID or log line.
func digitsOf(e164 string) string { return strings.TrimPrefix(e164, "+") }

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// env is a router with the WhatsApp connector (fake whatsmeow) and a
// loopback "matrix" leg, on real migrations.
type env struct {
	t        testing.TB
	ctx      context.Context
	db       *dbutil.Database
	router   *bridge.Router
	wa       *Connector
	mx       *bridgetest.HistoryLoopback
	sms      *bridgetest.Loopback // an SMS-like leg: takes no history
	matrix   *fakeMatrix
	sessions *fakeSessions
	logs     *testenv.SyncBuffer
	pseudo   *identity.Pseudonyms

	cfg    *config.Config
	log    zerolog.Logger
	opts   envOpts
	dbOpts database.Options

	mu      sync.Mutex
	clock   *fakeclock.Clock
	clients map[string]*fakeClient // account -> logged-in client
}

type envOpts struct {
	postgres     bool
	loginTimeout time.Duration
	metadata     time.Duration
	noUnrouted   bool
}

func newEnv(t testing.TB, opts ...func(*envOpts)) *env {
	t.Helper()
	var o envOpts
	for _, fn := range opts {
		fn(&o)
	}
	e := &env{
		t: t, ctx: context.Background(), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewHistoryLoopback(netMatrix),
		matrix: newFakeMatrix(), sessions: &fakeSessions{}, clients: map[string]*fakeClient{},
		clock: fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- logs ---\n%s", e.logs.String())
		}
	})
	log := zerolog.New(e.logs).Level(zerolog.DebugLevel)
	dbo := dbtest.SQLite(t)
	if o.postgres {
		dbo = dbtest.Postgres(t)
	}
	db, err := database.Open(e.ctx, dbo, log)
	require.NoError(t, err)
	e.db = db
	cfg := config.Default()
	cfg.Identity.Secret = secret
	cfg.WhatsApp.Enabled = true
	if o.loginTimeout > 0 {
		cfg.WhatsApp.LoginTimeout = config.Duration(o.loginTimeout)
	}
	if o.metadata > 0 {
		cfg.Retention.Metadata = config.Duration(o.metadata)
	}
	e.pseudo, err = identity.NewPseudonyms([]byte(secret))
	require.NoError(t, err)
	e.cfg, e.log, e.opts, e.dbOpts = cfg, log, o, dbo
	t.Cleanup(func() {
		if e.router != nil {
			_ = e.router.Stop(context.Background())
		}
		_ = db.Close()
	})
	e.start()
	return e
}

// connectorConfig is what the daemon gives the connector of cfg (no
// admin room).
func connectorConfig(cfg *config.Config) Config {
	return Config{WhatsApp: cfg.WhatsApp, Secret: cfg.Identity.Secret, MetadataRetention: cfg.Retention.Metadata.Std()}
}

// start makes the WhatsApp connector and a router on e.db and starts
// them, as the daemon does.
func (e *env) start() {
	t := e.t
	t.Helper()
	wa, err := New(connectorConfig(e.cfg), e.db, e.log, Options{Sessions: e.sessions, Now: e.clock.Now, RetryBase: 5 * time.Millisecond})
	require.NoError(t, err)
	wa.SetMatrix(e.matrix)
	r, err := bridge.New(bridge.Options{
		DB: e.db, Secret: []byte(secret), Log: e.log,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3,
		PollInterval:    50 * time.Millisecond,
		RetentionPolicy: &bridge.RetentionPolicy{Default: 8760 * time.Hour},
	})
	require.NoError(t, err)
	hooks := Hooks{OnChatTimer: r.SetLegTimer}
	if !e.opts.noUnrouted {
		// What the daemon does: a portal (here a loopback room) for the
		// account's user.
		hooks.OnUnrouted = func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
			room := bridge.ChatID("!portal-" + string(u.Chat) + ":example.org")
			return r.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: room}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
		}
	}
	wa.SetHooks(hooks)
	require.NoError(t, r.Register(e.mx))
	e.sms = bridgetest.NewLoopback(bridge.NetworkSMS)
	require.NoError(t, r.Register(e.sms))
	require.NoError(t, r.Register(wa))
	require.NoError(t, r.Start(e.ctx))
	e.router, e.wa = r, wa
	// A test that answers what the Matrix leg received refers to its
	// remote IDs: wait (briefly) until the router has noted them.
	e.mx.Settle = func() {
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if n, err := r.QueueDepth(context.Background()); err == nil && n == 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// restart stops the router and the connectors and starts new ones on the
// same database, as a restarted daemon does: nothing the connector kept
// in memory survives. The logged-in clients stay (their sessions are
// stored), with the old connector's handlers gone, and are reconnected;
// the "matrix" leg is a new loopback.
func (e *env) restart() {
	e.t.Helper()
	require.NoError(e.t, e.router.Stop(e.ctx))
	e.mu.Lock()
	clients := make([]*fakeClient, 0, len(e.clients))
	for _, f := range e.clients {
		clients = append(clients, f)
	}
	e.mu.Unlock()
	for _, f := range clients {
		f.mu.Lock()
		f.handlers, f.connected = nil, false
		f.mu.Unlock()
	}
	e.mx = bridgetest.NewHistoryLoopback(netMatrix)
	e.start()
	for _, f := range clients {
		require.True(e.t, f.waitFor(5*time.Second, func() bool { return f.connected }), "reconnected after the restart")
	}
}

// databases are the two backends the store-touching tests run on
// (PostgreSQL skips without a server, see pgtest).
var databases = []struct {
	name string
	opts []func(*envOpts)
}{{name: "sqlite"}, {name: "postgres", opts: []func(*envOpts){withPostgres}}}

func withPostgres(o *envOpts)                         { o.postgres = true }
func withLoginTimeout(d time.Duration) func(*envOpts) { return func(o *envOpts) { o.loginTimeout = d } }
func withMetadata(d time.Duration) func(*envOpts)     { return func(o *envOpts) { o.metadata = d } }
func withoutUnrouted(o *envOpts)                      { o.noUnrouted = true }

func (e *env) advance(d time.Duration) { e.clock.Advance(d) }

// login logs account in through the QR flow and returns its client.
func (e *env) login(account string, own types.JID) *fakeClient {
	e.t.Helper()
	f := newFakeClient(own)
	f.settle = func() {
		if settle := e.mx.Settle; settle != nil {
			settle()
		}
	}
	e.sessions.mu.Lock()
	e.sessions.next = append(e.sessions.next, f)
	e.sessions.mu.Unlock()
	req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: account}, Level: commands.LevelUser, Room: "!dm:example.org",
		Name: "login", Args: []string{"whatsapp"}, Reply: matrix.StepReplier(e.matrix, "!dm:example.org")}
	if account == RelayAccount {
		req.User.ID, req.Level, req.Args = admin, commands.LevelAdmin, []string{"whatsapp", "relay"}
	}
	answer := e.wa.LoginCommand(e.ctx, req)
	require.Contains(e.t, answer, "Scan the QR code")
	require.True(e.t, f.waitFor(5*time.Second, func() bool { return f.qr != nil && f.connected }))
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@fake-qr-" + account}
	require.True(e.t, e.matrix.waitFor(5*time.Second, func() bool { return len(e.matrix.images) > 0 }))
	f.dispatch(&events.PairSuccess{ID: own, BusinessName: "", Platform: "android"})
	f.qr <- whatsmeow.QRChannelSuccess
	close(f.qr)
	f.dispatch(&events.Connected{})
	_, ok := e.matrix.waitNotice("now logged in to WhatsApp")
	require.True(e.t, ok)
	e.sessions.store(own, f)
	e.mu.Lock()
	e.clients[account] = f
	e.mu.Unlock()
	return f
}

// message is an incoming WhatsApp message as whatsmeow emits it.
func message(chat, sender types.JID, msgID string, raw *waE2E.Message) *events.Message {
	evt := &events.Message{
		Info: types.MessageInfo{
			MessageSource: types.MessageSource{Chat: chat, Sender: sender, IsGroup: chat.Server == types.GroupServer},
			ID:            msgID, PushName: "Carol", Timestamp: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
		},
		RawMessage: raw,
	}
	return evt.UnwrapRaw()
}

func text(s string) *waE2E.Message { return &waE2E.Message{Conversation: proto.String(s)} }

// conversationOf returns the conversation and Matrix leg a WhatsApp chat
// was routed to.
func (e *env) conversationOf(chat bridge.ChatID) (bridge.ConversationID, bridge.Leg) {
	e.t.Helper()
	conv, err := e.router.ConversationOf(e.ctx, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat})
	require.NoError(e.t, err)
	legs, err := e.router.Legs(e.ctx, conv)
	require.NoError(e.t, err)
	for _, l := range legs {
		if l.Network == netMatrix {
			return conv, l
		}
	}
	e.t.Fatalf("no matrix leg")
	return "", bridge.Leg{}
}

// chatOf is the ChatID the connector gives account's chat with jid.
func (e *env) chatOf(account string, jid types.JID) bridge.ChatID {
	return bridge.ChatID(e.wa.keys.chatID(account, jid.ToNonAD().String()))
}

// requireNoNumbers fails if a number appears in s.
func requireNoNumbers(t testing.TB, s string, what string) {
	t.Helper()
	for _, n := range []string{aliceNumber, relayNumber, contactNumber, otherNumber} {
		require.NotContains(t, s, digitsOf(n), "%s contains a phone number", what)
	}
}

// requireStoredNoNumbers fails if a number is in clear in any value of
// the connector's tables or, for SQLite, anywhere in the database's file
// and write-ahead log.
func requireStoredNoNumbers(t testing.TB, e *env) {
	t.Helper()
	tables := tablesLike(e.ctx, t, e.db, "sb_whatsapp_%")
	require.Contains(t, tables, "sb_whatsapp_sender")
	require.Contains(t, tables, "sb_whatsapp_contact_reaction")
	requireNoNumbers(t, string(dumpTables(e.ctx, t, e.db, tables)), "the connector's tables")
	if e.dbOpts.Type != database.TypeSQLite {
		return
	}
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(e.dbOpts.URI + suffix)
		if suffix != "" && os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		requireNoNumbers(t, string(raw), "SQLite file"+suffix)
	}
}
