// Package pgtest gives each PostgreSQL test its own fresh database.
//
// The server is named by SWITCHBOARD_TEST_POSTGRES, a DSN for a role allowed
// to create databases, such as
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Without it
// the tests skip; CI sets it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the admin DSN.
const EnvDSN = "SWITCHBOARD_TEST_POSTGRES"

// opTimeout bounds each CREATE or DROP DATABASE.
const opTimeout = 30 * time.Second

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// DSN creates a uniquely named, empty database for t and returns a DSN for
// it; the database is dropped (WITH (FORCE), closing leftover connections)
// when t ends. It skips t when SWITCHBOARD_TEST_POSTGRES is unset and fails
// it when the server cannot be reached.
func DSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		t.Skip("set SWITCHBOARD_TEST_POSTGRES=postgres://... to run PostgreSQL tests (for example postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	name := DatabaseName(t.Name())
	dsn, err := WithDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := exec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := exec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dsn
}

// DatabaseName returns a fresh database name for a test: "sbtest_", the test
// name reduced to lower-case letters, digits and underscores, and 8 random
// hex digits, within PostgreSQL's 63-byte identifier limit.
func DatabaseName(testName string) string {
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	const maxBase = 63 - len("sbtest_") - len("_") - 8
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "sbtest_" + base + "_" + hex.EncodeToString(b[:])
}

// WithDatabase returns dsn with its database replaced by name. It accepts
// both URL DSNs (postgres://...) and keyword/value DSNs (host=... dbname=...).
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

func exec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect with %s: %w", EnvDSN, err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
