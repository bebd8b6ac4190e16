package safety_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/safety"
)

// TestNewChatGate: new_chats_per_hour on a fake clock; the user is told
// why and when, admins are flagged once (in the admin room, or by direct
// message when there is none), and the hour frees up again.
func TestNewChatGate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		adminRoom string
	}{
		{"flags go to the admin room", adminRoom},
		{"no admin room: admins are messaged directly", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, dbo database.Options) {
				cfg := defaultSafety()
				cfg.NewChatsPerHour, cfg.AdminRoom = 3, tc.adminRoom
				e := startEnv(t, dbo, cfg)
				ctx := context.Background()
				user := string(alice)
				for range 3 {
					require.NoError(t, e.svc.NewChatGate(ctx, user, bridge.NetworkSMS))
					e.clock.Advance(10 * time.Minute)
				}
				for range 2 {
					err := e.svc.NewChatGate(ctx, user, bridge.NetworkSMS)
					var le *safety.LimitError
					require.ErrorAs(t, err, &le)
					require.Equal(t, safety.LimitNewChats, le.Limit)
					require.Equal(t, 30*time.Minute, le.RetryAfter, "the first of the three leaves the hour in 30 minutes")
					containsAll(t, err.Error(), "new_chats_per_hour", "3 per hour", "30 minutes")
				}
				require.NoError(t, e.svc.NewChatGate(ctx, string(bob), bridge.NetworkSMS), "per user")
				flags := e.note.room(adminRoom)
				if tc.adminRoom == "" {
					flags = e.note.user("@admin:example.org")
				}
				require.Len(t, flags, 1, "one flag per hour, not one per attempt")
				containsAll(t, flags[0], user, "new chats", "new_chats_per_hour")
				require.Equal(t, 2.0, e.counter(t, "switchboard_safety_throttles_total", map[string]string{"limit": "new_chats"}))

				e.clock.Advance(31 * time.Minute)
				require.NoError(t, e.svc.NewChatGate(ctx, user, bridge.NetworkSMS))
			})
		})
	}
}

// TestHighCostDestinations: SMS to safety.high_cost_prefixes are limited
// per sender and hour; a refusal is permanent for that message (the sender
// is told by the router) and flags the sender.
func TestHighCostDestinations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		cfg := defaultSafety()
		cfg.HighCostPerHour, cfg.AdminRoom = 2, adminRoom
		e := startEnv(t, dbo, cfg)
		ctx := context.Background()
		send := safety.SMSSend{Sender: alice, SenderNetwork: bridge.NetworkMatrix, Conversation: "c1", Region: "GB", HighCost: true}
		require.NoError(t, e.svc.CheckSMS(ctx, send))
		require.NoError(t, e.svc.CheckSMS(ctx, send))
		err := e.svc.CheckSMS(ctx, send)
		require.ErrorIs(t, err, bridge.ErrPermanent)
		require.ErrorIs(t, err, safety.ErrLimited)
		require.Contains(t, err.Error(), "high-cost")
		require.NoError(t, e.svc.CheckSMS(ctx, safety.SMSSend{Sender: alice, SenderNetwork: bridge.NetworkMatrix, Region: "US"}), "ordinary destinations are not limited")
		require.Len(t, e.note.room(adminRoom), 1)
		e.clock.Advance(time.Hour)
		require.NoError(t, e.svc.CheckSMS(ctx, send))

		in, err := e.svc.Input(ctx, "matrix:"+string(alice))
		require.NoError(t, err)
		require.Equal(t, safety.Input{HighCost: 3, HighCostRefused: 1, Regions: 2}, in)
	})
}

// TestScoreSuspendsAutomatically: a user whose metadata score reaches
// safety.suspend_score is suspended pending review; admins get the
// signals, the user a notice.
func TestScoreSuspendsAutomatically(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		cfg := defaultSafety()
		cfg.NewChatsPerHour, cfg.SuspendScore, cfg.AdminRoom = 2, 30, adminRoom
		e := startEnv(t, dbo, cfg)
		ctx := context.Background()
		user := string(alice)
		var err error
		for i := 0; i < 10 && !e.svc.IsSuspended(user); i++ {
			err = e.svc.NewChatGate(ctx, user, bridge.NetworkSMS)
		}
		require.True(t, errors.Is(err, safety.ErrLimited))
		require.True(t, e.svc.IsSuspended(user))
		score, in, err := e.svc.Evaluate(ctx, "matrix:"+user)
		require.NoError(t, err)
		require.Equal(t, safety.Input{NewChats: 2, NewChatsRefused: 3}, in)
		require.Equal(t, 34, score)
		room := e.note.room(adminRoom)
		require.Len(t, room, 2) // the throttle flag and the suspension
		containsAll(t, room[1], user, "suspended automatically", "score 34", "2 new chats, 3 new chats refused", "admin unsuspend")
		require.Len(t, e.note.user(user), 1)
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"flags"}), "@alice:example.org — score 34 [suspended]")
		require.Equal(t, 1.0, e.counter(t, "switchboard_safety_suspensions_total", map[string]string{"by": "score"}))

		// An admin lifts it: the old signals do not suspend the user again
		// at the next one; only new signals reaching the threshold do.
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"unsuspend", user}), "Lifted")
		e.clock.Advance(time.Second)
		require.ErrorIs(t, e.svc.NewChatGate(ctx, user, bridge.NetworkSMS), safety.ErrLimited)
		require.False(t, e.svc.IsSuspended(user), "suspended again for signals an admin already reviewed")
		require.ErrorIs(t, e.svc.NewChatGate(ctx, user, bridge.NetworkSMS), safety.ErrLimited)
		require.ErrorIs(t, e.svc.NewChatGate(ctx, user, bridge.NetworkSMS), safety.ErrLimited)
		require.True(t, e.svc.IsSuspended(user), "three new refusals (score 30) since the review")
	})
}

// TestFlagAdmins: other parts of the bridge flag the admins once an hour
// per key.
func TestFlagAdmins(t *testing.T) {
	e := startEnv(t, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, func() config.Safety {
		cfg := defaultSafety()
		cfg.AdminRoom = adminRoom
		return cfg
	}())
	ctx := context.Background()
	e.svc.FlagAdmins(ctx, "relay:a", "contact a wrote")
	e.svc.FlagAdmins(ctx, "relay:a", "contact a wrote")
	e.svc.FlagAdmins(ctx, "relay:b", "contact b wrote")
	require.Equal(t, []string{"contact a wrote", "contact b wrote"}, e.note.room(adminRoom))
	e.clock.Advance(time.Hour)
	e.svc.FlagAdmins(ctx, "relay:a", "contact a wrote")
	require.Len(t, e.note.room(adminRoom), 3)
}
