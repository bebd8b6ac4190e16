package safety_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/safety"
)

// backends are the databases every store test runs on: in-memory SQLite
// (always), a SQLite file, and PostgreSQL when SWITCHBOARD_TEST_POSTGRES
// is set.
func eachBackend(t *testing.T, fn func(t *testing.T, dbo database.Options)) {
	for _, be := range []struct {
		name string
		open func(t *testing.T) database.Options
	}{
		{"sqlite-memory", func(*testing.T) database.Options {
			return database.Options{Type: database.TypeSQLite, URI: ":memory:"}
		}},
		{"postgres", func(t *testing.T) database.Options {
			return database.Options{Type: database.TypePostgres, URI: pgtest.DSN(t)}
		}},
	} {
		t.Run(be.name, func(t *testing.T) { fn(t, be.open(t)) })
	}
}

func sqliteFile(t *testing.T) database.Options {
	return database.Options{Type: database.TypeSQLite, URI: filepath.Join(t.TempDir(), "switchboard.db")}
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// notifier records the notices the service sends.
type notifier struct {
	mu    sync.Mutex
	rooms map[string][]string
	users map[string][]string
}

func (n *notifier) NotifyRoom(_ context.Context, room, text string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rooms == nil {
		n.rooms = map[string][]string{}
	}
	n.rooms[room] = append(n.rooms[room], text)
}

func (n *notifier) NotifyUser(_ context.Context, user, text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.users == nil {
		n.users = map[string][]string{}
	}
	n.users[user] = append(n.users[user], text)
	return nil
}

func (n *notifier) room(room string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.rooms[room]...)
}

func (n *notifier) user(user string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.users[user]...)
}

const adminRoom = "!admins:example.org"

// env is a started safety service on a real database with real
// migrations, a fake clock and a recording notifier.
type env struct {
	svc   *safety.Service
	db    *dbutil.Database
	ident *identity.Store
	clock *clock
	note  *notifier
	reg   *prometheus.Registry
	logs  *testenv.SyncBuffer
}

func defaultSafety() config.Safety {
	return config.Default().Safety
}

func startEnv(t testing.TB, dbo database.Options, cfg config.Safety, edit ...func(*safety.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clock: newClock(), note: &notifier{}, reg: prometheus.NewRegistry(), logs: &testenv.SyncBuffer{}}
	log := zerolog.New(e.logs)
	db, err := database.Open(ctx, dbo, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	e.db = db
	e.ident = identity.New(db)
	require.NoError(t, e.ident.Upgrade(ctx, log))
	opts := safety.Options{
		DB: db, Config: cfg, MetadataRetention: 48 * time.Hour, Admins: []string{"@admin:example.org"},
		Log: log, Registerer: e.reg, Now: e.clock.Now, People: e.ident.PersonKey, Aliases: e.ident.PersonKeys, Notifier: e.note,
	}
	for _, fn := range edit {
		fn(&opts)
	}
	e.svc, err = safety.New(opts)
	require.NoError(t, err)
	require.NoError(t, e.svc.Start(ctx))
	t.Cleanup(e.svc.Stop)
	return e
}

// counter reads a counter from the env's registry (0 if absent).
func (e *env) counter(t *testing.T, name string, labels map[string]string) float64 {
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func message(leg bridge.Leg, sender bridge.UserID, id string) *bridge.Event {
	return &bridge.Event{
		Kind: bridge.KindMessage, Source: leg, SourceID: bridge.RemoteID(id),
		Sender: bridge.Sender{ID: sender}, Content: &bridge.Content{Type: bridge.MsgText, Body: "secret body " + id},
	}
}

func admission(evt *bridge.Event, conv bridge.ConversationID, dests ...bridge.Leg) *bridge.Admission {
	return &bridge.Admission{Event: evt, Conversation: conv, Dests: dests}
}

func containsAll(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		require.True(t, strings.Contains(s, p), "%q does not contain %q", s, p)
	}
}
