// Package dbtest runs a test on every database backend switchboard
// supports: SQLite in a temporary file, and PostgreSQL on a fresh database
// when SWITCHBOARD_TEST_POSTGRES names a server (see pgtest; without it the
// PostgreSQL subtests skip and say so).
package dbtest

import (
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
