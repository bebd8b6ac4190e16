package identity

import (
	"context"
	"os"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// fixtureFile is a database written by the code before the keyring owned
// every key (commit 5b21206); connectors/sms/fixture_test.go says how to
// write it again. Its identity rows: a link (sealed number, look-up hash,
// pseudonym) with reveal on, a route, and a pending verification.
const fixtureFile = "../testdata/fixtures/keys-5b21206.sqlite"

// fixtureSecret is the identity.secret the fixture was written with.
const fixtureSecret = "test-identity-secret-0123456789abcdef"

const (
	fixtureLinked  = "+14155550181" // linked by fixtureOwner, reveal on
	fixtureRouted  = "+14155550182" // linked too, with a route for fixtureAsker
	fixturePending = "+14155550183" // fixtureAsker's pending verification
)

var (
	fixtureOwner = bridge.Address{Network: bridge.NetworkMatrix, ID: "@owner:example.org"}
	fixtureAsker = bridge.Address{Network: bridge.NetworkMatrix, ID: "@asker:example.org"}
)

func openFixtureStore(t *testing.T, path string) *Store {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, database.Options{Type: database.TypeSQLite, URI: path}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s := New(db)
	require.NoError(t, s.Upgrade(ctx, zerolog.Nop()))
	require.NoError(t, s.SetSecret([]byte(fixtureSecret)))
	return s
}

// writeFixture adds the identity rows to fixtureFile.
func writeFixture(t *testing.T) {
	ctx := context.Background()
	s := openFixtureStore(t, fixtureFile)
	require.NoError(t, s.link(ctx, fixtureOwner, fixtureLinked))
	require.NoError(t, s.link(ctx, fixtureOwner, fixtureRouted))
	require.NoError(t, s.SetReveal(ctx, fixtureOwner, true))
	require.NoError(t, s.SaveRoute(ctx, fixtureAsker, fixtureRouted, bridge.NetworkMatrix, "!dm:example.org"))
	_, err := s.Verifier(s.vault).Start(ctx, fixtureAsker, fixturePending)
	require.NoError(t, err)
	require.NoError(t, s.db.Close())
	dbtest.CompactSQLite(t, fixtureFile)
}

// TestFixtureOpens opens a copy of a database written before the keyring
// change: links are found by the look-up hash of their number, their sealed
// numbers open, pseudonyms still name them, and the pending verification's
// sealed number opens.
func TestFixtureOpens(t *testing.T) {
	if os.Getenv("SWITCHBOARD_WRITE_FIXTURE") == "1" {
		writeFixture(t)
	}
	path := dbtest.Fixture(t, fixtureFile)
	ctx := context.Background()
	s := openFixtureStore(t, path)

	owner, ok, err := s.LinkedOwner(ctx, fixtureLinked)
	require.NoError(t, err)
	require.True(t, ok, "found by its look-up hash")
	require.Equal(t, fixtureOwner, owner)

	links, err := s.Links(ctx, fixtureOwner)
	require.NoError(t, err)
	numbers := make([]string, len(links))
	for i, l := range links {
		numbers[i] = l.Number
	}
	require.ElementsMatch(t, []string{fixtureLinked, fixtureRouted}, numbers, "the sealed numbers open")

	number, ok, err := s.RevealedNumber(ctx, string(s.pseudo.Phone(fixtureLinked).ID))
	require.NoError(t, err)
	require.True(t, ok, "the stored pseudonym is the one derived today")
	require.Equal(t, fixtureLinked, number)

	route, ok, err := s.RouteFor(ctx, fixtureAsker, fixtureRouted)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bridge.ChatID("!dm:example.org"), route.Chat)

	var lookup string
	var sealed []byte
	require.NoError(t, s.db.QueryRow(ctx, `SELECT number_lookup, number_enc FROM sb_identity_verification WHERE address=$1`,
		fixtureAsker.String()).Scan(&lookup, &sealed))
	require.Equal(t, s.vault.Lookup(fixturePending), lookup)
	pending, err := s.vault.Open(sealed, fixtureAsker.String())
	require.NoError(t, err)
	require.Equal(t, fixturePending, pending)
}
