package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

func canary(t *testing.T) string {
	var b [12]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "CANARY" + hex.EncodeToString(b[:])
}

// sendCanaries routes the canary through every path that touches the
// database: delivered, edited, failed for good, and still queued.
func sendCanaries(t *testing.T, h *harness, secret string) {
	ctx := context.Background()
	h.conversation(legA("room"), legB("chat"))
	h.b.OnSend(func(d *bridge.Delivery) error {
		switch {
		case d.Event.Content != nil && d.Event.Content.Body == "fail "+secret:
			return bridge.Permanent(errors.New("rejected"))
		case d.Event.Content != nil && d.Event.Content.Body == "stuck "+secret:
			return errors.New("network down") // stays queued, retried later
		}
		return nil
	})
	msg := text("room", "$1", "hello "+secret)
	msg.Content.HTML = "<b>" + secret + "</b>"
	require.NoError(t, h.a.Receive(ctx, msg))
	require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindEdit, Source: legA("room"), SourceID: "$2", Target: "$1",
		Content: &bridge.Content{Type: bridge.MsgText, Body: "edited " + secret}}))
	require.NoError(t, h.a.Receive(ctx, text("room", "$3", "fail "+secret)))
	_, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
	require.True(t, ok)
	require.NoError(t, h.a.Receive(ctx, text("room", "$4", "stuck "+secret)))
	require.Len(t, h.b.WaitSent(2, 5*time.Second), 2)
	require.Eventually(t, func() bool {
		n, err := h.router.QueueDepth(ctx)
		return err == nil && n == 1
	}, 5*time.Second, 10*time.Millisecond, "one message must still be queued at rest")
}

func TestCanaryNeverReachesSQLiteFilesOrLogs(t *testing.T) {
	dir := t.TempDir()
	dbo := database.Options{Type: database.TypeSQLite, URI: filepath.Join(dir, "switchboard.db")}
	h := startHarness(t, dbo)
	secret := canary(t)
	sendCanaries(t, h, secret)
	// Read the files while the daemon is running (the -wal holds the recent
	// pages) and again after it stopped.
	check := func(when string) {
		files, err := filepath.Glob(filepath.Join(dir, "switchboard.db*"))
		require.NoError(t, err)
		if when == "running" {
			require.Contains(t, files, filepath.Join(dir, "switchboard.db-wal"), "expected the -wal while running")
		}
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
	require.NotEmpty(t, logs)
	require.False(t, bytes.Contains(logs, []byte(secret)), "canary found in logs")
}

func TestCanaryNeverReachesPostgres(t *testing.T) {
	dbo := dbtest.Postgres(t)
	h := startHarness(t, dbo)
	secret := canary(t)
	sendCanaries(t, h, secret)
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
		// Every column of every row, as text (bytea shows as hex, so look
		// for the hex form too).
		require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` t WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $2 || '%'`,
			secret, hex.EncodeToString([]byte(secret))).Scan(&hits))
		require.Zero(t, hits, "canary found in %s", table)
	}
	require.False(t, bytes.Contains(h.logs.Bytes(), []byte(secret)), "canary found in logs")
}
