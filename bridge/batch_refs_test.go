package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// TestBatchRefusedReferenceKeepsTheRest: in one SubmitBatch, an event
// whose target is unknown (refused) does not take the events after it
// down with it: they are accepted and delivered.
func TestBatchRefusedReferenceKeepsTheRest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		react := &bridge.Event{Kind: bridge.KindReaction, Source: legA("room"), SourceID: "r1", Target: "unknown", Reaction: "👍",
			Sender: bridge.Sender{ID: "alice"}}
		after := text("room", "m1", "after the reaction")
		after.Source.Network = netA
		errs := h.router.SubmitBatch(ctx, []*bridge.Event{react, after})
		require.True(t, errors.Is(errs[0], bridge.ErrTargetUnknown), "got %v", errs[0])
		require.NoError(t, errs[1])
		require.Equal(t, []string{"after the reaction"}, bodies(h.b.WaitSent(1, 5*time.Second)))
	})
}
