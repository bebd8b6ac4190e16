package identity_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

func TestPrefsAndConsents(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		db, err := database.Open(ctx, dbo, zerolog.Nop())
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s := identity.New(db)
		require.NoError(t, s.Upgrade(ctx, zerolog.Nop()))
		alice := bridge.Address{Network: bridge.NetworkMatrix, ID: "@alice:example.org"}
		bob := bridge.Address{Network: bridge.NetworkMatrix, ID: "@bob:example.org"}

		p, err := s.Prefs(ctx, alice)
		require.NoError(t, err)
		require.Equal(t, identity.Prefs{}, p, "defaults: no SMS, hidden number")

		require.NoError(t, s.SetSMS(ctx, alice, true))
		require.NoError(t, s.SetReveal(ctx, alice, true))
		require.NoError(t, s.SetPrefer(ctx, alice, bridge.NetworkWhatsApp))
		require.NoError(t, s.SetSMS(ctx, alice, false))
		require.ErrorIs(t, s.SetPrefer(ctx, alice, "fax"), identity.ErrInvalidPreference)

		p, err = s.Prefs(ctx, alice)
		require.NoError(t, err)
		require.Equal(t, identity.Prefs{SMS: false, Reveal: true, Prefer: bridge.NetworkWhatsApp}, p)
		p, err = s.Prefs(ctx, bob)
		require.NoError(t, err)
		require.Equal(t, identity.Prefs{}, p, "settings are per person")

		consents, err := s.Consents(ctx, alice)
		require.NoError(t, err)
		var kinds []string
		for _, c := range consents {
			kinds = append(kinds, c.Kind)
		}
		require.ElementsMatch(t, []string{"sms", "reveal", "sms"}, kinds)
	})
}
