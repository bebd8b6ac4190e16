package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// SubmitBatch (one commit for a homeserver transaction's events) behaves as
// the same events submitted one by one: per-event outcomes, duplicates
// dropped, a reply to an event earlier in the batch translated, and
// delivery in slice order.
func TestSubmitBatchActsAsSubmitsInOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		reply := text("room", "$r", "reply")
		reply.ReplyTo = "$1"
		unknown := text("nowhere", "$x", "lost")
		evts := []*bridge.Event{
			text("room", "$1", "one"),
			text("room", "$2", "two"),
			text("room", "$1", "one again"),
			unknown,
			reply,
			text("room", "$3", "three"),
		}
		for _, e := range evts {
			e.Source.Network = netA
		}
		errs := h.router.SubmitBatch(context.Background(), evts)
		require.Len(t, errs, len(evts))
		for i, err := range errs {
			if i == 3 {
				require.ErrorIs(t, err, bridge.ErrUnknownLeg)
				continue
			}
			require.NoError(t, err, "event %d", i)
		}
		sent := h.b.WaitSent(4, 10*time.Second)
		require.Equal(t, []string{"one", "two", "reply", "three"}, bodies(sent))
		require.Equal(t, sent[0].RemoteID, sent[2].Delivery.ReplyTo, "the reply names the copy of $1")
		waitQueueEmpty(t, h.router)

		// Submitted again (a retried transaction), every event is a duplicate.
		again := []*bridge.Event{text("room", "$1", "one"), text("room", "$3", "three")}
		for _, e := range again {
			e.Source.Network = netA
		}
		for _, err := range h.router.SubmitBatch(context.Background(), again) {
			require.NoError(t, err)
		}
		time.Sleep(300 * time.Millisecond) // a redelivery would show up now
		require.Len(t, h.b.Sent(), 4)
	})
}
