package sms_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// fixtureFile is a database written by the code before the keyring owned
// every key (commit 5b21206), with the secret of helpers_test.go. It holds
// an SMS chat (sealed number, keyed hashes), a payload queued for it, and
// an opt-out. To write it again (with today's code: only when the old one
// cannot be kept), delete it and run
//
//	SWITCHBOARD_WRITE_FIXTURE=1 go test -tags goolm -p 1 -run TestFixture ./connectors/sms ./identity
const fixtureFile = "../../testdata/fixtures/keys-5b21206.sqlite"

const (
	fixtureContact = "+14155550177"
	fixtureStopper = "+14155550178"
	fixtureBody    = "queued before the keyring change"
)

// writeFixture fills fixtureFile with the rows TestFixtureOpens reads.
func writeFixture(t *testing.T) {
	ctx := context.Background()
	e := fixtureEnv(t, fixtureFile)
	_, mxLeg, _ := e.conversation(fixtureContact, "!fixture:example.org")
	stop := inbound(sid(1), fixtureStopper, pool1, "STOP")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", stop, sign("/sms/twilio/incoming", stop)).Code)
	// A 429 paces the delivery, which stays queued (sealed) when the router
	// stops.
	e.twilio.fail(http.StatusTooManyRequests, `{"code":20429,"message":"Too Many Requests","status":429}`)
	e.sendFromMatrix(mxLeg, "$fixture-queued", fixtureBody)
	e.twilio.waitRequests(t, 1)
	require.NoError(t, e.router.Stop(ctx))
	depth, err := e.router.QueueDepth(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, depth)
	require.NoError(t, e.db.Close())
	dbtest.CompactSQLite(t, fixtureFile)
}

// TestFixtureOpens opens a copy of a database written before the keyring
// change: the chat is found by its keyed hash, its sealed number opens (the
// contact keeps its pseudonym), the queued payload opens and is sent, and
// the opt-out still holds.
func TestFixtureOpens(t *testing.T) {
	if os.Getenv("SWITCHBOARD_WRITE_FIXTURE") == "1" {
		writeFixture(t)
	}
	path := dbtest.Fixture(t, fixtureFile)

	ctx := context.Background()
	e := fixtureEnv(t, path)

	chats, err := e.sms.ChatsReaching(ctx, fixtureContact)
	require.NoError(t, err)
	require.Len(t, chats, 1, "found by its keyed hash")
	people, err := identity.NewPseudonyms([]byte(secret))
	require.NoError(t, err)
	who, ok, err := e.sms.ContactOf(ctx, chats[0])
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, people.Phone(fixtureContact), who, "the sealed number opens")
	pool, err := e.sms.PoolNumber(ctx, chats[0])
	require.NoError(t, err)
	require.Contains(t, []string{pool1, pool2}, pool)

	req := e.twilio.waitRequests(t, 1)[0]
	require.Equal(t, fixtureContact, req.Get("To"), "the queued payload opens")
	require.Equal(t, fixtureBody, req.Get("Body"))
	require.Equal(t, pool, req.Get("From"))

	out, err := sms.OptedOut(ctx, e.sms, fixtureStopper)
	require.NoError(t, err)
	require.True(t, out, "the opt-out is found by its keyed hash")
}

// fixtureEnv is newEnv on the SQLite file path.
func fixtureEnv(t *testing.T, path string) *env {
	e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), dbFile: path}
	return e.start(e.twilio.srv.URL)
}
