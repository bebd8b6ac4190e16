package matrix_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// netLoop is the loopback network used as the other leg.
const netLoop bridge.NetworkID = "loopb"

var routerSecret = []byte("0123456789abcdef0123456789abcdef")

func randomToken(t testing.TB) string {
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// reserved holds the appservice listeners opened by testConfig until the
// bridge serves on them, so nothing else (Dendrite, another test binary)
// can take the port between writing the registration and starting.
var reserved sync.Map // addr -> net.Listener

// testConfig returns a complete config whose appservice listens on a
// loopback port held open for it. The homeserver address is filled in once
// it runs.
func testConfig(t testing.TB) *config.Config {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	reserved.Store(addr, ln)
	t.Cleanup(func() {
		if l, ok := reserved.LoadAndDelete(addr); ok {
			_ = l.(net.Listener).Close()
		}
	})
	cfg := config.Default()
	cfg.Homeserver.Address = "http://127.0.0.1:1"
	cfg.Homeserver.Domain = "localhost"
	cfg.Appservice.Listen = addr
	cfg.Appservice.Address = "http://" + cfg.Appservice.Listen
	cfg.Appservice.ID = "switchboard"
	cfg.Appservice.ASToken = randomToken(t)
	cfg.Appservice.HSToken = randomToken(t)
	cfg.Identity.Secret = randomToken(t)
	cfg.Encryption.PickleKey = randomToken(t)
	// No homeserver yet: encryption could never start, and transactions
	// wait for it (503). startWithDendrite turns it back on.
	cfg.Encryption.Allow = false
	cfg.Permissions = map[string]string{"*": config.PermRelay, "localhost": config.PermUser, "@admin:localhost": config.PermAdmin}
	return cfg
}

// env is a router with the Matrix connector and a loopback connector on
// one SQLite database, with the appservice API served on
// cfg.Appservice.Listen.
type env struct {
	t      testing.TB
	cfg    *config.Config
	dbPath string
	dbo    database.Options
	db     *dbutil.Database
	router *bridge.Router
	conn   *matrix.Connector
	lb     *bridgetest.Loopback
	srv    *http.Server
	logs   *testenv.SyncBuffer
	hs     *dendrite.Server
}

// startBridge starts the router, both connectors and the appservice
// listener. dbPath may name an existing database (a restart).
func startBridge(t testing.TB, cfg *config.Config, dbPath string, logs *testenv.SyncBuffer) *env {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "switchboard.db")
	}
	return startBridgeDB(t, cfg, database.Options{Type: database.TypeSQLite, URI: dbPath}, logs)
}

// startBridgeDB is startBridge on any database.
func startBridgeDB(t testing.TB, cfg *config.Config, dbo database.Options, logs *testenv.SyncBuffer, extra ...bridge.Connector) *env {
	t.Helper()
	if logs == nil {
		logs = &testenv.SyncBuffer{}
	}
	dbPath := dbo.URI
	log := zerolog.New(logs).Level(zerolog.TraceLevel).With().Timestamp().Logger()
	ctx := context.Background()
	db, err := database.Open(ctx, dbo, log)
	require.NoError(t, err)
	conn, err := matrix.New(matrix.ConnectorConfig(cfg), db, log)
	require.NoError(t, err)
	lb := bridgetest.NewLoopback(netLoop)
	phones := &phoneLoop{Loopback: lb}
	r, err := bridge.New(bridge.Options{
		DB: db, Secret: routerSecret, Log: log,
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, MaxAttempts: 3,
		Lease: 2 * time.Second, PollInterval: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, r.Register(conn))
	// extra connectors replace the default phone network.
	if len(extra) == 0 {
		extra = []bridge.Connector{phones}
	}
	for _, c := range extra {
		require.NoError(t, r.Register(c))
	}
	var ln net.Listener
	if l, ok := reserved.LoadAndDelete(cfg.Appservice.Listen); ok {
		ln = l.(net.Listener)
	} else {
		ln, err = net.Listen("tcp", cfg.Appservice.Listen)
		require.NoError(t, err)
	}
	srv := &http.Server{Handler: conn.AppserviceHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	require.NoError(t, r.Start(ctx))
	e := &env{t: t, cfg: cfg, dbPath: dbPath, dbo: dbo, db: db, router: r, conn: conn, lb: lb, srv: srv, logs: logs}
	var once sync.Once
	t.Cleanup(func() { once.Do(e.stop) })
	return e
}

func (e *env) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	_ = e.router.Stop(ctx)
	_ = e.db.Close()
}

// startWithDendrite writes the registration from the config, starts
// Dendrite with it, and starts the bridge against that Dendrite. It skips
// when Dendrite is unavailable.
func startWithDendrite(t testing.TB, configure ...func(*config.Config)) *env {
	t.Helper()
	return startWithDendriteAnd(t, nil, configure...)
}

// startWithDendriteAnd is startWithDendrite with other connectors than the
// default phone network (phoneLoop on netLoop) registered on the router.
func startWithDendriteAnd(t testing.TB, extra []bridge.Connector, configure ...func(*config.Config)) *env {
	t.Helper()
	e := startOnDendrite(t, extra, nil, configure...)
	waitFor(t, 15*time.Second, "connector healthy", func() bool {
		return e.conn.Health(context.Background()).State == bridge.HealthOK
	})
	return e
}

// startOnDendrite starts Dendrite with the config's registration and the
// bridge against it, without waiting for the connector to be healthy.
// route, when set, turns Dendrite's URL into the address the bridge is
// given (a proxy in front of it).
func startOnDendrite(t testing.TB, extra []bridge.Connector, route func(hsURL string) string, configure ...func(*config.Config)) *env {
	t.Helper()
	cfg := testConfig(t)
	cfg.Encryption.Allow = true
	for _, fn := range configure {
		fn(cfg)
	}
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, config.WriteRegistration(cfg, reg))
	hs := dendrite.Start(t, dendrite.Options{Registrations: []string{reg}})
	cfg.Homeserver.Address = hs.URL
	if route != nil {
		cfg.Homeserver.Address = route(hs.URL)
	}
	cfg.Homeserver.Domain = hs.ServerName
	// CI runs the suite twice: on SQLite, then with PostgreSQL.
	dbo := dbtest.SQLite(t)
	if os.Getenv(pgtest.EnvDSN) != "" {
		dbo = dbtest.Postgres(t)
	}
	e := startBridgeDB(t, cfg, dbo, nil, extra...)
	e.hs = hs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- bridge log ---\n%s", testenv.TailBytes([]byte(e.logs.String()), 120))
		}
	})
	return e
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// user is a Matrix user logged in to the test Dendrite.
type user struct {
	id    string
	token string
	hs    *dendrite.Server
	txn   atomic.Int64
}

func (e *env) newUser(t testing.TB, localpart string) *user {
	t.Helper()
	id, token := e.hs.RegisterUser(t, localpart, "password-"+localpart)
	return &user{id: id, token: token, hs: e.hs}
}

func (u *user) do(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	return u.hs.DoJSON(t, method, "/_matrix/client/v3"+path, u.token, body, out)
}

func (u *user) createRoom(t testing.TB, req map[string]any) string {
	t.Helper()
	var resp struct {
		RoomID string `json:"room_id"`
	}
	status := u.do(t, http.MethodPost, "/createRoom", req, &resp)
	require.Equal(t, http.StatusOK, status, "createRoom")
	return resp.RoomID
}

func (u *user) join(t testing.TB, room string) {
	t.Helper()
	status := u.do(t, http.MethodPost, "/join/"+url.PathEscape(room), map[string]any{}, nil)
	require.Equal(t, http.StatusOK, status, "join")
}

func (u *user) send(t testing.TB, room, typ string, content map[string]any) string {
	t.Helper()
	var resp struct {
		EventID string `json:"event_id"`
	}
	path := fmt.Sprintf("/rooms/%s/send/%s/t%d", url.PathEscape(room), typ, u.txn.Add(1))
	status := u.do(t, http.MethodPut, path, content, &resp)
	require.Equal(t, http.StatusOK, status, "send %s", typ)
	return resp.EventID
}

func (u *user) sendText(t testing.TB, room, body string) string {
	return u.send(t, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": body})
}

// roomEvent is an event as the client-server API returns it.
type roomEvent struct {
	EventID  string         `json:"event_id"`
	Type     string         `json:"type"`
	Sender   string         `json:"sender"`
	StateKey *string        `json:"state_key"`
	Content  map[string]any `json:"content"`
	Redacts  string         `json:"redacts"`
}

func (u *user) messages(t testing.TB, room string) []roomEvent {
	t.Helper()
	var resp struct {
		Chunk []roomEvent `json:"chunk"`
	}
	status := u.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
	require.Equal(t, http.StatusOK, status, "messages")
	// Oldest first.
	for i, j := 0, len(resp.Chunk)-1; i < j; i, j = i+1, j-1 {
		resp.Chunk[i], resp.Chunk[j] = resp.Chunk[j], resp.Chunk[i]
	}
	return resp.Chunk
}

// waitEvent polls the room until an event matching fn appears.
func (u *user) waitEvent(t testing.TB, room, what string, fn func(roomEvent) bool) roomEvent {
	t.Helper()
	var found roomEvent
	waitFor(t, 15*time.Second, what, func() bool {
		for _, evt := range u.messages(t, room) {
			if fn(evt) {
				found = evt
				return true
			}
		}
		return false
	})
	return found
}

func (u *user) membership(t testing.TB, room, member string) string {
	t.Helper()
	var content struct {
		Membership string `json:"membership"`
	}
	status := u.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state/m.room.member/"+url.PathEscape(member), nil, &content)
	if status != http.StatusOK {
		return ""
	}
	return content.Membership
}

func body(evt roomEvent) string {
	s, _ := evt.Content["body"].(string)
	return s
}

var errInjected = errors.New("injected failure")

func idOf(u *user) id.UserID { return id.UserID(u.id) }

// phoneLoop is the loopback connector posing as a network that reaches
// phone numbers: the chat for a number is "phone-<n>", and contacts have
// no display name (as an SMS contact would).
type phoneLoop struct {
	*bridgetest.Loopback
	mu    sync.Mutex
	chats map[string]bridge.ChatID
}

func (p *phoneLoop) OpenPhoneChat(_ context.Context, _ string, phone string, _ bridge.ConversationID) (bridge.ChatID, bridge.Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chats == nil {
		p.chats = make(map[string]bridge.ChatID)
	}
	chat, ok := p.chats[phone]
	if !ok {
		chat = bridge.ChatID("phone-" + strconv.Itoa(len(p.chats)+1))
		p.chats[phone] = chat
	}
	return chat, bridge.Sender{ID: bridge.UserID(phone)}, nil
}

func idOfString(s string) id.UserID { return id.UserID(s) }

// waitMapped waits until the router has recorded remote as a message on a
// network. The router records the ID a destination returned after the send
// finished, so a test that answers a just-delivered message waits for it,
// as a real contact's reply would come later anyway.
func (e *env) waitMapped(t testing.TB, network bridge.NetworkID, remote bridge.RemoteID) {
	t.Helper()
	waitFor(t, 10*time.Second, "message "+string(remote)+" mapped", func() bool {
		var n int
		err := e.db.QueryRow(context.Background(),
			`SELECT COUNT(*) FROM sb_message WHERE network=$1 AND remote_id=$2`, network, remote).Scan(&n)
		return err == nil && n > 0
	})
}

// loopPortal creates a portal for user with contact and joins it in a
// conversation with the loopback leg "chat-1", returning the room ID.
func (e *env) loopPortal(t testing.TB, user id.UserID, contact bridge.Sender) string {
	t.Helper()
	ctx := context.Background()
	chat, err := e.conn.CreatePortal(ctx, matrix.PortalOptions{User: user, Network: netLoop, Contact: contact, Direct: true})
	require.NoError(t, err)
	_, err = e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: chat},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	return string(chat)
}
