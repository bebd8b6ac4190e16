package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
)

// TestRetentionChangesApplyToTheNextMessage: every change of what a
// conversation's retention depends on (its setting, a leg's chat timer, a
// leg leaving and joining again) applies to the very next message
// accepted, although accepts keep that input in memory.
func TestRetentionChangesApplyToTheNextMessage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		clock := fakeclock.New(time.Time{})
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) {
			o.Now = clock.Now
			o.RetentionPolicy = &bridge.RetentionPolicy{Default: 24 * time.Hour}
		}))
		ctx := context.Background()
		conv := h.conversation(legA("room"), legB("chat"))
		for i, step := range []struct {
			name   string
			change func() error
			keep   time.Duration
		}{
			{"server default", nil, 24 * time.Hour},
			{"server default again (from memory)", nil, 24 * time.Hour},
			{"conversation setting", func() error { return h.router.SetConversationRetention(ctx, conv, time.Hour, false) }, time.Hour},
			{"leg timer", func() error { return h.router.SetLegTimer(ctx, legB("chat"), 10*time.Minute) }, 10 * time.Minute},
			{"leg left", func() error { return h.router.RemoveLeg(ctx, legB("chat")) }, time.Hour},
			{"leg back without its timer", func() error { return h.router.AddLeg(ctx, conv, legB("chat")) }, time.Hour},
			{"off", func() error { return h.router.SetConversationRetention(ctx, conv, 0, true) }, 0},
		} {
			if step.change != nil {
				require.NoError(t, step.change(), step.name)
			}
			id := bridge.RemoteID("$" + string(rune('a'+i)))
			require.NoError(t, h.a.Receive(ctx, text("room", string(id), "hi")), step.name)
			want := int64(0)
			if step.keep > 0 {
				want = clock.Now().Add(step.keep).UnixMilli()
			}
			require.Equal(t, want, expiresAt(t, h, legA("room"), id), step.name)
		}
	})
}
