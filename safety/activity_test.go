package safety_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// TestActivitySurvivesRestart: what people sent in which conversation, and
// how much of it nobody answered, is the same after a restart (it is
// written at Stop), and stored activity goes once quiet for the signal
// window.
func TestActivitySurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		cfg := defaultSafety()
		cfg.SignalWindow = 0 // 24h
		e := startEnv(t, dbo, cfg)
		ctx := context.Background()
		send := func(leg bridge.Leg, sender bridge.UserID, conv bridge.ConversationID, id string, to bridge.Leg) {
			t.Helper()
			require.NoError(t, e.svc.Admit(ctx, admission(message(leg, sender, id), conv, to)))
		}
		for i := range 4 {
			send(roomA, alice, "c1", "a"+string(rune('0'+i)), smsA)
		}
		send(smsA, phoneX, "c1", "x1", roomA) // answers alice's four
		send(roomA, alice, "c1", "a4", smsA)  // one unanswered
		send(roomB, alice, "c2", "a5", smsB)  // another, elsewhere
		before, err := e.svc.Input(ctx, "matrix:"+string(alice))
		require.NoError(t, err)
		require.Equal(t, 6, before.Outbound)
		require.Equal(t, 2, before.Unanswered)

		e.svc.Stop()
		restarted := startEnvOn(t, e)
		after, err := restarted.Input(ctx, "matrix:"+string(alice))
		require.NoError(t, err)
		require.Equal(t, before.Outbound, after.Outbound, "sent messages survive the restart")
		require.Equal(t, before.Unanswered, after.Unanswered, "unanswered ones too")

		// Quiet for longer than the window: forgotten in the database too.
		restarted.Stop()
		e.clock.Advance(25 * time.Hour)
		again := startEnvOn(t, e)
		require.NoError(t, again.Purge(ctx))
		var n int
		require.NoError(t, e.db.QueryRow(ctx, `SELECT COUNT(*) FROM sb_safety_activity`).Scan(&n))
		require.Zero(t, n)
		gone, err := again.Input(ctx, "matrix:"+string(alice))
		require.NoError(t, err)
		require.Zero(t, gone.Outbound)
	})
}
