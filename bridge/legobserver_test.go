package bridge_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// observer is a loopback connector that records what LegsChanged told it.
type observer struct {
	*bridgetest.Loopback
	mu   sync.Mutex
	told []legChange
}

type legChange struct {
	conv bridge.ConversationID
	legs []bridge.Leg
}

func (o *observer) LegsChanged(_ context.Context, conv bridge.ConversationID, legs []bridge.Leg) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.told = append(o.told, legChange{conv, legs})
}

func (o *observer) take() []legChange {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.told
	o.told = nil
	return out
}

var _ bridge.LegObserver = (*observer)(nil)

// A LegObserver with a chat in a conversation is told the conversation's
// legs whenever they change: created, a leg added, a leg removed (also
// its own); connectors with no chat there are not told.
func TestLegObserver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		obs := &observer{Loopback: bridgetest.NewLoopback(netC)}
		h := startHarness(t, dbo, withConnector(obs))
		ctx := context.Background()
		legC := bridge.Leg{Network: netC, Chat: "c1"}

		conv := h.conversation(legC, legA("a1"))
		got := obs.take()
		require.Len(t, got, 1)
		require.Equal(t, conv, got[0].conv)
		require.ElementsMatch(t, []bridge.Leg{legC, legA("a1")}, got[0].legs)

		require.NoError(t, h.router.AddLeg(ctx, conv, legB("b1")))
		got = obs.take()
		require.Len(t, got, 1)
		require.ElementsMatch(t, []bridge.Leg{legC, legA("a1"), legB("b1")}, got[0].legs)

		require.NoError(t, h.router.RemoveLeg(ctx, legA("a1")))
		got = obs.take()
		require.Len(t, got, 1)
		require.ElementsMatch(t, []bridge.Leg{legC, legB("b1")}, got[0].legs)

		require.NoError(t, h.router.RemoveLeg(ctx, legC))
		got = obs.take()
		require.Len(t, got, 1, "told about its own leg leaving")
		require.ElementsMatch(t, []bridge.Leg{legB("b1")}, got[0].legs)

		h.conversation(legA("a2"), legB("b2"))
		require.Empty(t, obs.take(), "not told about conversations without its chats")
	})
}
