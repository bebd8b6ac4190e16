package pgtest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
)

func TestDatabaseName(t *testing.T) {
	for _, tc := range []struct{ in, prefix string }{
		{"TestSimple", "sbtest_testsimple_"},
		{"TestX/sub test #1", "sbtest_testx_sub_test_1_"},
		{strings.Repeat("TestVeryLong", 20), "sbtest_testverylong"},
	} {
		got := pgtest.DatabaseName(tc.in)
		if !strings.HasPrefix(got, tc.prefix) || len(got) > 63 {
			t.Errorf("DatabaseName(%q) = %q (%d bytes), want prefix %q and at most 63 bytes", tc.in, got, len(got), tc.prefix)
		}
		if again := pgtest.DatabaseName(tc.in); again == got {
			t.Errorf("DatabaseName(%q) repeated %q", tc.in, got)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable"},
		{"postgresql://u:p%40ss@host/", "postgresql://u:p%40ss@host/db1"},
		{"host=127.0.0.1 user=postgres dbname=postgres", "host=127.0.0.1 user=postgres dbname=postgres dbname=db1"},
	} {
		got, err := pgtest.WithDatabase(tc.in, "db1")
		if err != nil || got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDSNGivesAFreshDatabaseAndDropsIt(t *testing.T) {
	var name string
	t.Run("use", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "sbtest_testdsngivesafreshdatabaseanddropsit_use_") {
			t.Errorf("current_database() = %q", name)
		}
		var tables int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database has %d tables", tables)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		// The connection stays open: the cleanup must drop the database anyway.
	})
	if name == "" {
		return // skipped
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after the test ended", name)
	}
}
