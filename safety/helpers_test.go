package safety_test

import (
	"context"
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
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/safety"
)

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
	clock *fakeclock.Clock
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
	e := &env{clock: fakeclock.New(time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)), note: &notifier{}, reg: prometheus.NewRegistry(), logs: &testenv.SyncBuffer{}}
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
