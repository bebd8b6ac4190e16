package bridge_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// sendHistoryCanaries routes the canary through history: delivered to the
// leg that takes history, dropped for the one that does not, past
// retention (never written), and queued at rest (its delivery keeps
// failing).
func sendHistoryCanaries(t *testing.T, h *harness, c *bridgetest.HistoryLoopback, secret string) {
	ctx := context.Background()
	h.conversation(legA("hist"), legB("hist"), bridge.Leg{Network: netC, Chat: "hist"})
	c.OnSend(func(d *bridge.Delivery) error {
		if d.Event.Content.Body == "stuck "+secret {
			return errors.New("homeserver down") // stays queued
		}
		return nil
	})
	now := time.Now()
	errs := h.router.SubmitBatch(ctx, []*bridge.Event{
		historyEvent("hist", "old", "too old "+secret, now.Add(-400*24*time.Hour)),
		historyEvent("hist", "h1", "history "+secret, now.Add(-time.Hour)),
		historyEvent("hist", "h2", "stuck "+secret, now.Add(-time.Minute)),
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, []string{"history " + secret}, bodies(c.WaitSent(1, 5*time.Second)))
	require.Eventually(t, func() bool {
		n, err := h.router.QueueDepth(ctx)
		return err == nil && n == 1
	}, 5*time.Second, 10*time.Millisecond, "the stuck history message must be queued at rest")
	require.Empty(t, h.b.Sent())
}

func historyHarness(t *testing.T, dbo database.Options) (*harness, *bridgetest.HistoryLoopback) {
	c := bridgetest.NewHistoryLoopback(netC)
	h := startHarness(t, dbo, withConnector(c), withOptions(func(o *bridge.Options) {
		o.RetentionPolicy = &bridge.RetentionPolicy{Default: 365 * 24 * time.Hour}
	}))
	return h, c
}

func TestHistoryCanaryNeverReachesSQLiteFilesOrLogs(t *testing.T) {
	dir := t.TempDir()
	h, c := historyHarness(t, database.Options{Type: database.TypeSQLite, URI: filepath.Join(dir, "switchboard.db")})
	secret := canary(t)
	sendHistoryCanaries(t, h, c, secret)
	check := func(when string) {
		files, err := filepath.Glob(filepath.Join(dir, "switchboard.db*"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.False(t, bytes.Contains(data, []byte(secret)), "%s: canary found in %s", when, filepath.Base(f))
		}
	}
	check("running")
	logs := h.logs.Bytes()
	h.stop()
	check("stopped")
	require.False(t, bytes.Contains(logs, []byte(secret)), "canary found in logs")
}

func TestHistoryCanaryNeverReachesPostgres(t *testing.T) {
	h, c := historyHarness(t, dbtest.Postgres(t))
	secret := canary(t)
	sendHistoryCanaries(t, h, c, secret)
	ctx := context.Background()
	rows, err := h.db.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	rows.Close()
	require.Contains(t, tables, "sb_queue")
	for _, table := range tables {
		var hits int
		require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` t WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $2 || '%'`,
			secret, hex.EncodeToString([]byte(secret))).Scan(&hits))
		require.Zero(t, hits, "canary found in %s", table)
	}
	require.False(t, bytes.Contains(h.logs.Bytes(), []byte(secret)), "canary found in logs")
}
