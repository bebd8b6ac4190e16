package whatsapp

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/store/sqlstore/upgrades"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/internal/testutil/waserver"
)

// These tests run the connector on its production session store
// (SQLSessions, with the sealed whatsmeow tables of storecrypt.go) and a
// real whatsmeow client, against a local WhatsApp server
// (internal/testutil/waserver). The contact is a second real whatsmeow
// client on its own plain sqlstore, so every message crosses real Signal
// encryption both ways. Nothing in the connector knows about the server:
// the test points whatsmeow at it through its HTTP-client seams and the
// certificate root variable.

var waserverOnce sync.Once

// contactLogLevel and serverLogLevel are how much of the contact
// clients' and the server's logs a failed test shows.
var (
	contactLogLevel = zerolog.WarnLevel
	serverLogLevel  = zerolog.InfoLevel
)

// useWAServer makes whatsmeow trust the test servers' certificate root
// and ping every fraction of a second (so keep-alives run during a
// test). Set once, before any client connects.
func useWAServer() {
	waserverOnce.Do(func() {
		whatsmeow.WACertPubKey = waserver.RootKey()
		whatsmeow.KeepAliveIntervalMin = 150 * time.Millisecond
		whatsmeow.KeepAliveIntervalMax = 300 * time.Millisecond
	})
}

// serverSessions are the production SQLSessions with every client they
// make pointed at the test server.
type serverSessions struct {
	*SQLSessions
	srv *waserver.Server
}

func (s *serverSessions) New(ctx context.Context) (Client, error) {
	cli, err := s.SQLSessions.New(ctx)
	if err == nil {
		s.srv.Attach(cli.(*whatsmeow.Client))
	}
	return cli, err
}

func (s *serverSessions) Load(ctx context.Context, jid types.JID) (Client, error) {
	cli, err := s.SQLSessions.Load(ctx, jid)
	if err == nil {
		s.srv.Attach(cli.(*whatsmeow.Client))
	}
	return cli, err
}

// srvEnv is a router with the WhatsApp connector on SQLSessions and a
// loopback "matrix" leg, with a WhatsApp server for them.
type srvEnv struct {
	t      *testing.T
	ctx    context.Context
	srv    *waserver.Server
	db     *dbutil.Database
	dbo    database.Options
	cfg    *config.Config
	log    zerolog.Logger
	logs   *testenv.SyncBuffer
	matrix *fakeMatrix

	router   *bridge.Router
	wa       *Connector
	mx       *bridgetest.Loopback
	sessions *serverSessions
}

func newSrvEnv(t *testing.T, dbo database.Options) *srvEnv {
	t.Helper()
	useWAServer()
	e := &srvEnv{t: t, ctx: context.Background(), dbo: dbo, logs: &testenv.SyncBuffer{}, matrix: newFakeMatrix()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- logs ---\n%s", e.logs.String())
		}
	})
	e.log = zerolog.New(e.logs).Level(zerolog.DebugLevel)
	srv, err := waserver.New(waserver.Options{Log: e.log.With().Str("component", "waserver").Logger().Level(serverLogLevel)})
	require.NoError(t, err)
	e.srv = srv
	t.Cleanup(srv.Close)
	e.db, err = database.Open(e.ctx, dbo, e.log)
	require.NoError(t, err)
	e.cfg = config.Default()
	e.cfg.Identity.Secret = secret
	e.cfg.WhatsApp.Enabled = true
	t.Cleanup(func() {
		if e.router != nil {
			_ = e.router.Stop(context.Background())
		}
		_ = e.db.Close()
	})
	e.start()
	return e
}

// start makes the connector (on SQLSessions) and a router on e.db and
// starts them, as the daemon does.
func (e *srvEnv) start() {
	t := e.t
	t.Helper()
	sql, err := NewSQLSessions(e.db, secret, e.log)
	require.NoError(t, err)
	e.sessions = &serverSessions{SQLSessions: sql, srv: e.srv}
	wa, err := New(connectorConfig(e.cfg), e.db, e.log, Options{Sessions: e.sessions, RetryBase: 20 * time.Millisecond})
	require.NoError(t, err)
	wa.SetMatrix(e.matrix)
	r, err := bridge.New(bridge.Options{
		DB: e.db, Secret: []byte(secret), Log: e.log,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3,
		PollInterval:    50 * time.Millisecond,
		RetentionPolicy: &bridge.RetentionPolicy{Default: 8760 * time.Hour},
	})
	require.NoError(t, err)
	wa.SetHooks(Hooks{OnChatTimer: r.SetLegTimer, OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		room := bridge.ChatID("!portal-" + string(u.Chat) + ":example.org")
		return r.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: room}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	e.mx = bridgetest.NewLoopback(netMatrix)
	require.NoError(t, r.Register(e.mx))
	require.NoError(t, r.Register(wa))
	require.NoError(t, r.Start(e.ctx))
	e.router, e.wa = r, wa
}

// restart stops the router and connectors and starts new ones on the same
// database: only what is stored survives, the whatsmeow session included.
func (e *srvEnv) restart() {
	e.t.Helper()
	require.NoError(e.t, e.router.Stop(e.ctx))
	e.start()
}

// stepRecorder keeps a login's later steps.
type stepRecorder struct {
	mu    sync.Mutex
	steps []commands.Step
}

func (r *stepRecorder) reply(_ context.Context, s commands.Step) {
	r.mu.Lock()
	r.steps = append(r.steps, s)
	r.mu.Unlock()
}

// wait returns the first step of that type, waiting for it.
func (r *stepRecorder) wait(t *testing.T, typ commands.StepType) commands.Step {
	t.Helper()
	var found commands.Step
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.steps {
			if s.Type == typ {
				found = s
				return true
			}
			require.NotEqual(t, commands.StepError, s.Type, "login failed: %s", s.Text)
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "login step %s", typ)
	return found
}

// loginQR is `login whatsapp` from account, completed by the account's
// phone (the server) scanning the first QR code the bot shows. It returns
// the linked device's JID.
func (e *srvEnv) loginQR(account, phone string) types.JID {
	e.t.Helper()
	rec := &stepRecorder{}
	req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: account}, Level: commands.LevelUser, Room: "!dm:example.org",
		Name: "login", Args: []string{"whatsapp"}, Reply: rec.reply}
	if account == RelayAccount {
		req.User.ID, req.Level, req.Args = admin, commands.LevelAdmin, []string{"whatsapp", "relay"}
	}
	require.Contains(e.t, e.wa.LoginCommand(e.ctx, req), "Scan the QR code")
	qr := rec.wait(e.t, commands.StepQR)
	e.srv.AddAccount(phone, "Alice")
	require.NoError(e.t, e.srv.ScanQR(qr.Payload, phone))
	done := rec.wait(e.t, commands.StepDone)
	require.Contains(e.t, done.Text, "now logged in to WhatsApp")
	e.waitConnected(account)
	l := e.wa.loginOf(account)
	require.NotNil(e.t, l)
	return l.jid
}

// waitConnected waits until account's login is connected.
func (e *srvEnv) waitConnected(account string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		e.wa.mu.Lock()
		defer e.wa.mu.Unlock()
		l := e.wa.logins[account]
		return l != nil && l.state == StateConnected
	}, 20*time.Second, 10*time.Millisecond, "login of %s connected", account)
}

// contact is a WhatsApp user's phone: a real whatsmeow client on its own
// store (plain sqlstore, as any WhatsApp client keeps it).
type contact struct {
	cli *whatsmeow.Client
	mu  sync.Mutex
	got []*events.Message
	rcp []*events.Receipt
	cs  []*events.ChatPresence
}

func (e *srvEnv) newContact(phone, name string) *contact {
	e.t.Helper()
	db, err := database.Open(e.ctx, dbtest.SQLite(e.t), zerolog.Nop())
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = db.Close() })
	container := sqlstore.NewWithWrappedDB(db.Child("whatsmeow_version", upgrades.Table, nil), nil)
	require.NoError(e.t, container.Upgrade(e.ctx))
	c := &contact{cli: whatsmeow.NewClient(container.NewDevice(), waLog.Zerolog(e.log.With().Str("component", "contact").Logger().Level(contactLogLevel)))}
	c.cli.AddEventHandler(func(evt any) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch evt := evt.(type) {
		case *events.Message:
			if !onlyKeys(evt.Message) {
				c.got = append(c.got, evt)
			}
		case *events.Receipt:
			c.rcp = append(c.rcp, evt)
		case *events.ChatPresence:
			c.cs = append(c.cs, evt)
		}
	})
	e.srv.AddAccount(phone, name)
	require.NoError(e.t, e.srv.Pair(e.ctx, c.cli, phone))
	e.t.Cleanup(c.cli.Disconnect)
	return c
}

// waitMessages waits until the contact received n messages and returns
// them.
func (c *contact) waitMessages(t *testing.T, n int) []*events.Message {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.got) >= n
	}, 20*time.Second, 10*time.Millisecond, "contact received %d messages", n)
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*events.Message(nil), c.got...)
}

// waitSent waits until the "matrix" leg received n deliveries.
func (e *srvEnv) waitSent(n int) []bridgetest.Sent {
	e.t.Helper()
	sent := e.mx.WaitSent(n, 20*time.Second)
	require.GreaterOrEqual(e.t, len(sent), n, "matrix leg received %d deliveries", n)
	return sent
}

// matrixLeg is the Matrix leg of the conversation holding a WhatsApp chat.
func (e *srvEnv) matrixLeg(chat bridge.ChatID) bridge.Leg {
	e.t.Helper()
	conv, err := e.router.ConversationOf(e.ctx, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat})
	require.NoError(e.t, err)
	legs, err := e.router.Legs(e.ctx, conv)
	require.NoError(e.t, err)
	for _, l := range legs {
		if l.Network == netMatrix {
			return l
		}
	}
	e.t.Fatalf("no matrix leg")
	return bridge.Leg{}
}

// requireNoNumbersAnywhere reads every table of the bridge's database
// (the connector's, the router's and whatsmeow's) and, for SQLite, its
// files: neither the contacts' nor the accounts' own numbers are in clear.
// The tables named must have rows.
func (e *srvEnv) requireNoNumbersAnywhere(tables ...string) {
	t := e.t
	t.Helper()
	for _, table := range append([]string{"whatsmeow_device", "sb_whatsapp_login"}, tables...) {
		var n int
		require.NoError(t, e.db.QueryRow(e.ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
		require.Positive(t, n, "%s has rows, so the check means something", table)
	}
	dump := dumpTables(e.ctx, t, e.db, tablesLike(e.ctx, t, e.db, "%"))
	for _, num := range []string{contactNumber, aliceNumber, relayNumber, otherNumber} {
		require.False(t, bytes.Contains(dump, []byte(digitsOf(num))), "a number (%s) is stored in clear", num)
	}
	if e.dbo.Type != database.TypeSQLite {
		return
	}
	for _, suffix := range []string{"", "-wal"} {
		raw, err := readIfExists(e.dbo.URI + suffix)
		require.NoError(t, err)
		for _, num := range []string{contactNumber, aliceNumber, relayNumber, otherNumber} {
			require.False(t, bytes.Contains(raw, []byte(digitsOf(num))), "SQLite file%s holds a number (%s) in clear", suffix, num)
		}
	}
}

// onlyKeys reports whether a decrypted message carries nothing but a
// sender key distribution (whatsmeow emits those parts of a group message
// as messages of their own).
func onlyKeys(m *waE2E.Message) bool {
	if m.GetSenderKeyDistributionMessage() == nil {
		return false
	}
	rest := proto.Clone(m).(*waE2E.Message)
	rest.SenderKeyDistributionMessage, rest.MessageContextInfo = nil, nil
	return proto.Size(rest) == 0
}
