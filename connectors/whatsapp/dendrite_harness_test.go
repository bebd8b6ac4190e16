package whatsapp

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// dendriteBridgeOptions says what differs between the Dendrite tests'
// bridges; the zero value is a plain WhatsApp bridge with unencrypted
// portals.
type dendriteBridgeOptions struct {
	// Encrypted makes new portals encrypted (encryption.default).
	Encrypted bool
	// Config tweaks the config before the registration is written.
	Config func(*config.Config)
	// RewriteRegistration writes the registration again once the
	// homeserver's domain is known (namespaces that name it).
	RewriteRegistration bool
	// Router tweaks the router's options.
	Router func(*bridge.Options)
	// Wire runs once the connectors are registered and the WhatsApp
	// connector's commands are in h.cmds, before the bridge starts: extra
	// commands, connectors or seams go here.
	Wire func(h *dendriteBridge)
	// Sessions makes the WhatsApp connector's sessions on the bridge's
	// database; nil uses fakeSessions (h.sessions).
	Sessions func(db *dbutil.Database, secret string, log zerolog.Logger) Sessions
}

// dendriteBridge is a running Dendrite homeserver with the real Matrix
// connector and the WhatsApp connector (fake whatsmeow sessions) behind
// one router, and alice registered on the homeserver.
type dendriteBridge struct {
	t        *testing.T
	ctx      context.Context
	hs       *dendrite.Server
	cfg      *config.Config
	db       *dbutil.Database
	dbPath   string
	mx       *matrix.Connector
	wa       *Connector
	router   *bridge.Router
	cmds     *commands.Registry
	sessions *fakeSessions
	logs     *testenv.SyncBuffer
	alice    string
	tok      string // alice's access token
}

// startDendriteBridge starts the homeserver and the bridge, waits for the
// Matrix connector to be healthy and registers alice; everything stops
// when the test ends (the logs' tail is printed if it failed).
func startDendriteBridge(t *testing.T, opts dendriteBridgeOptions) *dendriteBridge {
	t.Helper()
	port, err := testenv.FreePort()
	require.NoError(t, err)
	cfg := config.Default()
	cfg.Appservice.Listen = "127.0.0.1:" + strconv.Itoa(port)
	cfg.Appservice.Address = "http://" + cfg.Appservice.Listen
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = token(t), token(t)
	cfg.Identity.Secret, cfg.Encryption.PickleKey = token(t), token(t)
	cfg.WhatsApp.Enabled = true
	cfg.Encryption.Default = opts.Encrypted
	if opts.Config != nil {
		opts.Config(cfg)
	}
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, config.WriteRegistration(cfg, reg))
	hs := dendrite.Start(t, dendrite.Options{Registrations: []string{reg}})
	cfg.Homeserver.Address, cfg.Homeserver.Domain = hs.URL, hs.ServerName
	cfg.Permissions = map[string]string{"*": config.PermRelay, hs.ServerName: config.PermUser}
	if opts.RewriteRegistration {
		require.NoError(t, config.WriteRegistration(cfg, reg))
	}

	logs := &testenv.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- logs ---\n%s", testenv.TailBytes([]byte(logs.String()), 80))
		}
	})
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "sb.db")
	db, err := database.Open(ctx, database.Options{Type: database.TypeSQLite, URI: dbPath}, log)
	require.NoError(t, err)
	mx, err := matrix.New(matrix.Config{
		Homeserver: cfg.Homeserver, Appservice: cfg.Appservice, Encryption: cfg.Encryption,
		Permissions: cfg.Permissions, Secret: cfg.Identity.Secret, Lease: cfg.Delivery.Lease.Std(),
	}, db, log)
	require.NoError(t, err)
	sessions := &fakeSessions{}
	var waSessions Sessions = sessions
	if opts.Sessions != nil {
		waSessions = opts.Sessions(db, cfg.Identity.Secret, log)
	}
	wa, err := New(connectorConfig(cfg), db, log, Options{Sessions: waSessions})
	require.NoError(t, err)
	ropts := bridge.Options{DB: db, Secret: []byte(cfg.Identity.Secret), Log: log, PollInterval: 100 * time.Millisecond}
	if opts.Router != nil {
		opts.Router(&ropts)
	}
	r, err := bridge.New(ropts)
	require.NoError(t, err)
	require.NoError(t, r.Register(mx))
	require.NoError(t, r.Register(wa))
	wa.SetMatrix(mx)
	wa.SetHooks(Hooks{OnChatTimer: r.SetLegTimer, OnUnrouted: func(ctx context.Context, u Unrouted) (bridge.ConversationID, error) {
		// What the daemon does (daemon/whatsapp.go).
		room, err := mx.CreatePortal(ctx, matrix.PortalOptions{User: id.UserID(u.Account), Network: bridge.NetworkWhatsApp, Contact: u.Contact, Direct: !u.Group, Name: u.Name})
		if err != nil {
			return "", err
		}
		return r.CreateConversation(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: room}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	}})
	cmds := commands.New(commands.Options{})
	require.NoError(t, Register(cmds, wa))
	h := &dendriteBridge{t: t, ctx: ctx, hs: hs, cfg: cfg, db: db, dbPath: dbPath, mx: mx, wa: wa,
		router: r, cmds: cmds, sessions: sessions, logs: logs}
	if opts.Wire != nil {
		opts.Wire(h)
	}
	mx.SetCommands(cmds)
	ln, err := net.Listen("tcp", cfg.Appservice.Listen)
	require.NoError(t, err)
	srv := &http.Server{Handler: mx.AppserviceHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() {
		_ = srv.Close()
		_ = r.Stop(context.Background())
		_ = db.Close()
	})
	require.Eventually(t, func() bool { return mx.Health(ctx).State == bridge.HealthOK }, 15*time.Second, 50*time.Millisecond)

	h.alice, h.tok = hs.RegisterUser(t, "alice", "password-alice")
	return h
}

// do calls the client-server API (/_matrix/client/v3) as alice.
func (h *dendriteBridge) do(method, path string, body, out any) int {
	return h.hs.DoJSON(h.t, method, "/_matrix/client/v3"+path, h.tok, body, out)
}

// state reads a room's state event as alice.
func (h *dendriteBridge) state(room, typ, key string, out any) int {
	return h.do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state/"+typ+"/"+url.PathEscape(key), nil, out)
}

// bot is the bridge bot's Matrix ID.
func (h *dendriteBridge) bot() string {
	return "@" + h.cfg.Appservice.BotUsername + ":" + h.hs.ServerName
}
