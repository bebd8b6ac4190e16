package bridge

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// bareRouter starts a router without connectors on a fresh database; its
// scheduler sleeps for an hour between sweeps unless woken.
func bareRouter(t testing.TB, dialect string) *Router {
	t.Helper()
	ctx := context.Background()
	dbo := database.Options{Type: database.TypeSQLite, URI: filepath.Join(t.TempDir(), "sb.db")}
	if dialect == database.TypePostgres {
		dbo = dbtest.Postgres(t)
	}
	db, err := database.Open(ctx, dbo, zerolog.Nop())
	require.NoError(t, err)
	r, err := New(Options{DB: db, Secret: []byte("0123456789abcdef0123456789abcdef"), Log: zerolog.Nop(), PollInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	<-r.expiry.swept // the start-up sweep must not race the test's rows
	t.Cleanup(func() {
		_ = r.Stop(context.Background())
		_ = r.DB().Close()
	})
	return r
}

// insertSynthetic bulk-inserts n sb_message rows in one statement; expiring
// rows get deadlines 1..n ms after the epoch (long past), the others none.
// IDs are prefix and a number.
func insertSynthetic(t testing.TB, db *dbutil.Database, n int, expiring bool, prefix string, createdAt int64) {
	t.Helper()
	expires := "NULL"
	if expiring {
		expires = "i"
	}
	var q string
	if db.Dialect == dbutil.Postgres {
		q = `INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
			SELECT 'bench', 'chat' || (i % 1000), '` + prefix + `r' || i, '` + prefix + `' || i, 'conv', $2, ` + expires + `
			FROM generate_series(1, $1) AS g(i)`
	} else {
		q = `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $1)
			INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
			SELECT 'bench', 'chat' || (i % 1000), '` + prefix + `r' || i, '` + prefix + `' || i, 'conv', $2, ` + expires + ` FROM g`
	}
	_, err := db.Exec(context.Background(), q, n, createdAt)
	require.NoError(t, err)
}

func explain(t *testing.T, db *dbutil.Database, query string, args ...any) string {
	t.Helper()
	prefix := "EXPLAIN QUERY PLAN "
	if db.Dialect == dbutil.Postgres {
		prefix = "EXPLAIN "
	}
	rows, err := db.Query(context.Background(), prefix+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		// The plan text is the last column on both (SQLite: id, parent,
		// notused, detail; PostgreSQL: QUERY PLAN).
		switch v := vals[len(vals)-1].(type) {
		case string:
			lines = append(lines, v)
		case []byte:
			lines = append(lines, string(v))
		}
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "\n")
}

// TestExpirySweepUsesIndexes proves the sweep's queries read the partial
// indexes, so a sweep costs O(expired) and not O(table): the due rows, the
// next deadline, due queue rows and old metadata rows.
func TestExpirySweepUsesIndexes(t *testing.T) {
	for _, dialect := range []string{database.TypeSQLite, database.TypePostgres} {
		t.Run(dialect, func(t *testing.T) {
			r := bareRouter(t, dialect)
			db := r.DB()
			// A table where almost nothing expires, so a scan would be costly.
			now := time.Now().UnixMilli()
			insertSynthetic(t, db, 100000, false, "recent", now)
			insertSynthetic(t, db, 50, false, "old", 1)
			insertSynthetic(t, db, 50, true, "m", 1)
			// And a queue of undelivered rows without deadlines.
			seed := `INSERT INTO sb_queue (conversation_id, message_id, network, chat_id, payload, next_attempt_at, accepted_at)
				SELECT conversation_id, message_id, network, chat_id, $1, 0, 0 FROM sb_message WHERE expires_at IS NULL AND created_at > 1`
			_, err := db.Exec(context.Background(), seed, []byte{0})
			require.NoError(t, err)
			if db.Dialect == dbutil.Postgres {
				_, err = db.Exec(context.Background(), "ANALYZE")
				require.NoError(t, err)
			}
			for _, tc := range []struct {
				name, query, index string
				args               []any
			}{
				{"due", expiryDueQuery, "sb_message_expiry_idx", []any{now, expiryBatch}},
				{"next", expiryNextQuery, "sb_message_expiry_idx", nil},
				{"queue", expiryQueueQuery, "sb_queue_expiry_idx", []any{now}},
				{"metadata", metadataQuery, "sb_message_created_idx", []any{now - 3600_000, expiryBatch}},
			} {
				plan := explain(t, db, tc.query, tc.args...)
				t.Logf("%s plan:\n%s", tc.name, plan)
				require.Contains(t, plan, tc.index, "%s must use its index", tc.name)
				if tc.name == "due" {
					require.NotContains(t, plan, "Seq Scan")
					require.NotContains(t, plan, "SCAN sb_message\n")
					require.NotContains(t, plan, "TEMP B-TREE", "ORDER BY must come from the index")
					require.NotContains(t, plan, "Sort")
				}
			}
			n, err := r.ExpireNow(context.Background())
			require.NoError(t, err)
			require.Equal(t, 50, n)
			var seen int
			require.NoError(t, db.QueryRow(context.Background(), "SELECT COUNT(*) FROM sb_seen").Scan(&seen))
			require.Equal(t, 50, seen, "each expired copy leaves a seen hash")
			old, err := r.expiry.purgeMetadata(context.Background(), time.Now().Add(-time.Hour))
			require.NoError(t, err)
			require.EqualValues(t, 50, old)
			var left int
			require.NoError(t, db.QueryRow(context.Background(), "SELECT COUNT(*) FROM sb_message").Scan(&left))
			require.Equal(t, 100000, left, "only expired rows and old metadata are purged")
		})
	}
}

// BenchmarkExpire1M times purging 1,000,000 expired message rows (no
// connector: the purge cost alone). Run with
//
//	go test -tags goolm -run '^$' -bench Expire1M -benchtime 1x ./bridge
func BenchmarkExpire1M(b *testing.B) {
	const n = 1_000_000
	for _, dialect := range []string{database.TypeSQLite, database.TypePostgres} {
		b.Run(dialect, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := bareRouter(b, dialect)
				start := time.Now()
				insertSynthetic(b, r.DB(), n, true, "m", 1)
				b.Logf("inserted %d rows in %s", n, time.Since(start))
				b.StartTimer()
				start = time.Now()
				got, err := r.ExpireNow(context.Background())
				elapsed := time.Since(start)
				b.StopTimer()
				require.NoError(b, err)
				require.Equal(b, n, got)
				var left int
				require.NoError(b, r.DB().QueryRow(context.Background(), "SELECT COUNT(*) FROM sb_message").Scan(&left))
				require.Zero(b, left)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "rows/s")
				b.Logf("purged %d rows in %s", n, elapsed)
			}
		})
	}
}
