package bridge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// TestAdmitterRefusesAndExcludes: an Admitter can refuse an event (Submit
// returns the typed refusal, nothing is queued) or keep it from some legs
// (they never receive it), per sender.
func TestAdmitterRefusesAndExcludes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		c := bridgetest.NewLoopback(netC)
		var mu sync.Mutex
		var seen []*bridge.Admission
		admit := bridge.AdmitFunc(func(_ context.Context, a *bridge.Admission) error {
			mu.Lock()
			seen = append(seen, a)
			mu.Unlock()
			switch a.Event.Sender.ID {
			case "suspended":
				return &bridge.RefusedError{Reason: "suspended", RetryAfter: time.Minute}
			case "blocked-by-c":
				for _, d := range a.Dests {
					if d.Network == netC {
						a.Exclude(d)
					}
				}
			}
			return nil
		})
		h := startHarness(t, dbo, withConnector(c), withOptions(func(o *bridge.Options) { o.Admitter = admit }))
		conv := h.conversation(legA("x"), legB("x"), bridge.Leg{Network: netC, Chat: "x"})
		ctx := context.Background()

		for _, tc := range []struct {
			name, sender string
			refused      bool
			toB, toC     bool
		}{
			{"accepted for everyone", "alice", false, true, true},
			{"refused with a reason", "suspended", true, false, false},
			{"kept from the leg that blocked the sender", "blocked-by-c", false, true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				evt := text("x", "id-"+tc.sender, "body of "+tc.sender)
				evt.Sender.ID = bridge.UserID(tc.sender)
				err := h.a.Receive(ctx, evt)
				if tc.refused {
					require.ErrorIs(t, err, bridge.ErrRefused)
					var re *bridge.RefusedError
					require.ErrorAs(t, err, &re)
					require.Equal(t, "suspended", re.Reason)
					require.Equal(t, time.Minute, re.RetryAfter)
				} else {
					require.NoError(t, err)
				}
				waitQueueEmpty(t, h.router)
			})
		}
		// Everything accepted has been delivered by now (the queue is empty).
		require.ElementsMatch(t, []string{"body of alice", "body of blocked-by-c"}, bodies(h.b.Sent()))
		require.Equal(t, []string{"body of alice"}, bodies(c.Sent()))
		require.Equal(t, float64(1), metricValue(h, "switchboard_messages_total", map[string]string{"network": "loopa", "direction": "in", "result": "refused"}))

		mu.Lock()
		require.Len(t, seen, 3)
		require.Equal(t, conv, seen[0].Conversation)
		require.ElementsMatch(t, []bridge.Leg{legB("x"), {Network: netC, Chat: "x"}}, seen[0].Dests)
		mu.Unlock()

		// Typing from the blocked sender skips the excluded leg too.
		require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindTyping, Source: legA("x"), Sender: bridge.Sender{ID: "blocked-by-c"}, Typing: true}))
		require.Eventually(t, func() bool { return len(h.b.Typing()) == 1 }, 5*time.Second, 5*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		require.Empty(t, c.Typing())

		// A redelivery of an accepted event that the admitter would now
		// refuse is a duplicate: nil, and not delivered again.
		again := text("x", "id-alice", "body of alice")
		again.Sender.ID = "suspended"
		require.NoError(t, h.a.Receive(ctx, again))
		waitQueueEmpty(t, h.router)
		require.Len(t, h.b.Sent(), 2)

		// Events from a chat of no conversation skip admission and fail as before.
		require.ErrorIs(t, h.a.Receive(ctx, text("nowhere", "n1", "x")), bridge.ErrUnknownLeg)
	})
}

// TestPacedDeliveriesNeverGiveUp: a connector that paces (bridge.Paced)
// gets the delivery again after the wait, as often as it takes: no attempt
// is counted (MaxAttempts is 2 here, each message is paced 5 times), the
// sender is not told of retries, and order is kept.
func TestPacedDeliveriesNeverGiveUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) { o.MaxAttempts = 2 }))
		h.conversation(legA("p"), legB("p"))
		var mu sync.Mutex
		paced := map[bridge.MessageID]int{}
		attempts := map[bridge.MessageID][]int{}
		h.b.OnSend(func(d *bridge.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			attempts[d.Message] = append(attempts[d.Message], d.Attempt)
			if paced[d.Message] < 5 {
				paced[d.Message]++
				return bridge.Paced(3 * time.Millisecond)
			}
			return nil
		})
		const n = 4
		for i := range n {
			require.NoError(t, h.a.Receive(context.Background(), text("p", "m"+string(rune('0'+i)), string(rune('0'+i)))))
		}
		sent := h.b.WaitSent(n, 10*time.Second)
		require.Equal(t, []string{"0", "1", "2", "3"}, bodies(sent))
		waitQueueEmpty(t, h.router)
		mu.Lock()
		for msg, a := range attempts {
			require.Len(t, a, 6, "message %s", msg)
			for _, attempt := range a {
				require.Equal(t, 1, attempt, "a paced send is not an attempt")
			}
		}
		mu.Unlock()
		for _, st := range h.a.Statuses() {
			require.Equal(t, bridge.StateDelivered, st.State, "no retry or failure report for pacing")
		}
		require.Equal(t, float64(5*n), metricValue(h, "switchboard_delivery_paced_total", map[string]string{"network": "loopb"}))
		require.Zero(t, metricValue(h, "switchboard_delivery_retries_total", map[string]string{"network": "loopb"}))
	})
}
