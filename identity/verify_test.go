package identity

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
)

// newVerifier opens a store on SQLite, or on PostgreSQL when the test DSN
// is set (then the returned path is "").
func newVerifier(t *testing.T) (*Verifier, *fakeclock.Clock, string) {
	t.Helper()
	if os.Getenv(pgtest.EnvDSN) != "" {
		return openVerifier(t, dbtest.Postgres(t))
	}
	return newSQLiteVerifier(t)
}

func newSQLiteVerifier(t *testing.T) (*Verifier, *fakeclock.Clock, string) {
	t.Helper()
	return openVerifier(t, database.Options{Type: database.TypeSQLite, URI: filepath.Join(t.TempDir(), "id.db")})
}

func openVerifier(t *testing.T, opts database.Options) (*Verifier, *fakeclock.Clock, string) {
	t.Helper()
	ctx := context.Background()
	path := ""
	if opts.Type == database.TypeSQLite {
		path = opts.URI
	}
	db, err := database.Open(ctx, opts, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s := New(db)
	require.NoError(t, s.Upgrade(ctx, zerolog.Nop()))
	clock := fakeclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s.now = clock.Now
	vault, err := NewVault([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	return s.Verifier(vault), clock, path
}

var (
	alice = bridge.Address{Network: bridge.NetworkMatrix, ID: "@alice:example.org"}
	bob   = bridge.Address{Network: bridge.NetworkMatrix, ID: "@bob:example.org"}
)

const number = "+14155550123"

func TestVerifyFlows(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, v *Verifier, clock *fakeclock.Clock)
	}{
		{"right code links once", func(t *testing.T, v *Verifier, _ *fakeclock.Clock) {
			code, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			require.Regexp(t, `^\d{6}$`, code)
			got, err := v.Verify(ctx, alice, code)
			require.NoError(t, err)
			require.Equal(t, number, got)
			_, err = v.Verify(ctx, alice, code)
			require.ErrorIs(t, err, ErrNoPendingCode, "single use")
		}},
		{"wrong code refused, then right one works", func(t *testing.T, v *Verifier, _ *fakeclock.Clock) {
			code, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			_, err = v.Verify(ctx, alice, wrong(code))
			require.ErrorIs(t, err, ErrWrongCode)
			got, err := v.Verify(ctx, alice, code)
			require.NoError(t, err)
			require.Equal(t, number, got)
		}},
		{"expired after 10 minutes", func(t *testing.T, v *Verifier, clock *fakeclock.Clock) {
			code, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			clock.Advance(CodeLifetime)
			_, err = v.Verify(ctx, alice, code)
			require.ErrorIs(t, err, ErrCodeExpired)
		}},
		{"five wrong tries lock the code", func(t *testing.T, v *Verifier, _ *fakeclock.Clock) {
			code, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			for i := 0; i < MaxTries-1; i++ {
				_, err = v.Verify(ctx, alice, wrong(code))
				require.ErrorIs(t, err, ErrWrongCode)
			}
			_, err = v.Verify(ctx, alice, wrong(code))
			require.ErrorIs(t, err, ErrTooManyTries)
			_, err = v.Verify(ctx, alice, code)
			require.ErrorIs(t, err, ErrTooManyTries, "even the right code, once locked")
		}},
		{"codes belong to their person", func(t *testing.T, v *Verifier, _ *fakeclock.Clock) {
			code, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			_, err = v.Verify(ctx, bob, code)
			require.ErrorIs(t, err, ErrNoPendingCode)
		}},
		{"a new code replaces the old one", func(t *testing.T, v *Verifier, _ *fakeclock.Clock) {
			first, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			second, err := v.Start(ctx, alice, number)
			require.NoError(t, err)
			if first != second {
				_, err = v.Verify(ctx, alice, first)
				require.ErrorIs(t, err, ErrWrongCode)
			}
			_, err = v.Verify(ctx, alice, second)
			require.NoError(t, err)
		}},
		{"rate limited per person and per number, for an hour", func(t *testing.T, v *Verifier, clock *fakeclock.Clock) {
			for i := 0; i < CodesPerUserHour; i++ {
				_, err := v.Start(ctx, alice, number)
				require.NoError(t, err)
			}
			_, err := v.Start(ctx, alice, "+14155550124")
			require.ErrorIs(t, err, ErrRateLimited, "per person")
			_, err = v.Start(ctx, bob, number)
			require.ErrorIs(t, err, ErrRateLimited, "per number")
			clock.Advance(time.Hour)
			require.NoError(t, v.Purge(ctx))
			_, err = v.Start(ctx, bob, number)
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, clock, _ := newVerifier(t)
			tc.run(t, v, clock)
		})
	}
}

func wrong(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestVerificationKeepsNumberAndCodeOutOfTheFile(t *testing.T) {
	v, _, path := newSQLiteVerifier(t)
	code, err := v.Start(context.Background(), alice, number)
	require.NoError(t, err)
	require.NoError(t, v.store.db.Close())
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotContains(t, string(data), strings.TrimPrefix(number, "+"), f)
		require.NotContains(t, string(data), code, f)
	}
}

func TestVault(t *testing.T) {
	v, err := NewVault([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	other, err := NewVault([]byte("fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	require.Equal(t, v.Lookup(number), v.Lookup(number), "stable")
	require.NotEqual(t, v.Lookup(number), other.Lookup(number), "keyed")
	sealed := v.Seal(number, "row1")
	got, err := v.Open(sealed, "row1")
	require.NoError(t, err)
	require.Equal(t, number, got)
	_, err = v.Open(sealed, "row2")
	require.ErrorIs(t, err, ErrSealed, "bound to its row")
	_, err = other.Open(sealed, "row1")
	require.ErrorIs(t, err, ErrSealed, "bound to its key")
	_, err = NewVault([]byte("short"))
	require.ErrorIs(t, err, ErrInvalidSecret)
}
