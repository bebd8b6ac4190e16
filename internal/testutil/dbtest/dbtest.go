// Package dbtest runs a test on every database backend switchboard
// supports: SQLite in a temporary file, and PostgreSQL on a fresh database
// when SWITCHBOARD_TEST_POSTGRES names a server (see pgtest; without it the
// PostgreSQL subtests skip and say so).
package dbtest

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
)

// Backend is one database backend for tests.
type Backend struct {
	// Name is the subtest name: "sqlite" or "postgres".
	Name string
	// Options returns options for an empty database of this backend,
	// removed when t ends.
	Options func(t testing.TB) database.Options
}

// Backends returns every backend, SQLite first.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Options: SQLite},
		{Name: "postgres", Options: Postgres},
	}
}

// SQLite returns options for a SQLite database in a temporary file.
func SQLite(t testing.TB) database.Options {
	return database.Options{Type: database.TypeSQLite, URI: filepath.Join(t.TempDir(), "switchboard.db")}
}

// Postgres returns options for a fresh PostgreSQL database; it skips t
// without SWITCHBOARD_TEST_POSTGRES.
func Postgres(t testing.TB) database.Options {
	return database.Options{Type: database.TypePostgres, URI: pgtest.DSN(t)}
}

// Each runs fn as one subtest per backend.
func Each(t *testing.T, fn func(t *testing.T, dbo database.Options)) {
	t.Helper()
	for _, be := range Backends() {
		t.Run(be.Name, func(t *testing.T) { fn(t, be.Options(t)) })
	}
}

// Fixture returns the path of a private copy of a SQLite database file
// committed under testdata (a database written by older code), so a test
// can open and change it without touching the original.
func Fixture(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("dbtest: read fixture: %v", err)
	}
	out := filepath.Join(t.TempDir(), "fixture.db")
	if err = os.WriteFile(out, raw, 0o600); err != nil {
		t.Fatalf("dbtest: copy fixture: %v", err)
	}
	return out
}

// CompactSQLite rewrites a SQLite file with small pages and no free ones
// and without a write-ahead log, so a fixture committed to the repository
// stays small.
func CompactSQLite(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024", "VACUUM"} {
		if _, err = db.Exec(q); err != nil {
			t.Fatalf("dbtest: %s: %v", q, err)
		}
	}
}
