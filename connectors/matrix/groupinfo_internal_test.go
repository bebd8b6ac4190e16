package matrix

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// A ghost's remote user is recorded once and read back after a restart
// (a new connector on the same database); a user's space is one row, the
// first recorded winning, on both databases.
func TestGhostRemoteAndSpaceRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		log := zerolog.Nop()
		raw, err := database.Open(ctx, dbo, log)
		require.NoError(t, err)
		t.Cleanup(func() { _ = raw.Close() })
		db, err := database.Upgrade(ctx, raw, migrations.Matrix, log)
		require.NoError(t, err)

		c := &Connector{db: db}
		ghost := id.UserID("@sb_abcdefghijklmnop:example.org")
		_, ok, err := c.ghostRemoteOf(ctx, ghost)
		require.NoError(t, err)
		require.False(t, ok)
		c.rememberGhost(ctx, ghost, bridge.NetworkWhatsApp, "ph_contact")
		c.rememberGhost(ctx, ghost, bridge.NetworkWhatsApp, "ph_contact")

		again := &Connector{db: db}
		got, ok, err := again.ghostRemoteOf(ctx, ghost)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, ghostRemote{bridge.NetworkWhatsApp, "ph_contact"}, got)

		user := id.UserID("@alice:example.org")
		space, err := c.Space(ctx, user)
		require.NoError(t, err)
		require.Empty(t, space)
		won, err := c.execOne(ctx, "save space", spaceInsertQuery, user, "!space1:example.org", int64(1))
		require.NoError(t, err)
		require.True(t, won)
		won, err = c.execOne(ctx, "save space", spaceInsertQuery, user, "!space2:example.org", int64(2))
		require.NoError(t, err)
		require.False(t, won, "a second space for the same user loses")
		space, err = again.Space(ctx, user)
		require.NoError(t, err)
		require.Equal(t, id.RoomID("!space1:example.org"), space)
		require.Equal(t, user, c.spaceOwner(ctx, space))
	})
}
