package bridge_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// hanging is a connector whose sends hang, as a send to a Twilio that
// never answers does: until the context ends, or (ignoreCtx, like
// twilio-go, which takes no context) until the test ends.
type hanging struct {
	network   bridge.NetworkID
	hang      bool
	ignoreCtx bool
	release   chan struct{}
	entered   chan struct{}

	mu    sync.Mutex
	calls int
}

func newHanging(hang, ignoreCtx bool) *hanging {
	return &hanging{network: netC, hang: hang, ignoreCtx: ignoreCtx, release: make(chan struct{}), entered: make(chan struct{}, 16)}
}

func (h *hanging) Network() bridge.NetworkID   { return h.network }
func (h *hanging) Init(bridge.Host)            {}
func (h *hanging) Start(context.Context) error { return nil }
func (h *hanging) Stop(context.Context) error  { return nil }
func (h *hanging) SendMessage(ctx context.Context, _ *bridge.Delivery) (bridge.RemoteID, error) {
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	h.entered <- struct{}{}
	if h.hang {
		if h.ignoreCtx {
			<-h.release
			return "", context.Canceled
		}
		<-ctx.Done()
		return "", ctx.Err()
	}
	return bridge.RemoteID("c-" + strconv.Itoa(n)), nil
}

func (h *hanging) callCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// TestStopCancelsInFlightSends: with a destination that hangs, Stop
// returns promptly (it took 28 s with Twilio hanging: sends ran on a
// background context); the cancelled delivery is not counted as an
// attempt, nobody is told it failed, it stays queued, and after a restart
// it is delivered exactly once.
func TestStopCancelsInFlightSends(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ignoreCtx bool
	}{
		{"send honours its context", false},
		{"send ignores its context", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, dbo database.Options) {
				stuck := newHanging(true, tc.ignoreCtx)
				t.Cleanup(func() { close(stuck.release) })
				h := startHarness(t, dbo, withConnector(stuck), withOptions(func(o *bridge.Options) {
					o.StopGrace = 100 * time.Millisecond
					o.SendTimeout = time.Minute
				}))
				h.conversation(legA("room"), bridge.Leg{Network: netC, Chat: "chat"})
				require.NoError(t, h.a.Receive(context.Background(), text("room", "$1", "hello")))
				select {
				case <-stuck.entered:
				case <-time.After(10 * time.Second):
					t.Fatal("delivery never started")
				}

				stopped := make(chan error, 1)
				go func() { stopped <- h.router.Stop(context.Background()) }()
				select {
				case err := <-stopped:
					require.NoError(t, err)
				case <-time.After(10 * time.Second):
					t.Fatal("Stop did not return while a send hung")
				}
				var queued, attempts int
				require.NoError(t, h.db.QueryRow(context.Background(),
					`SELECT COUNT(*), COALESCE(MAX(attempts), 0) FROM sb_queue`).Scan(&queued, &attempts))
				require.Equal(t, 1, queued, "the interrupted message stays queued")
				require.Equal(t, 0, attempts, "an interrupted send is not a failed attempt")
				for _, rep := range h.a.Statuses() {
					require.NotContains(t, []bridge.DeliveryState{bridge.StateRetrying, bridge.StateFailed}, rep.State, "the sender is not told of a shutdown")
				}
				require.Equal(t, 1, stuck.callCount())
				require.NoError(t, h.db.Close())
				h.router = nil

				ok := newHanging(false, false)
				h2 := startHarness(t, dbo, withConnector(ok))
				rep, delivered := h2.a.WaitStatus(10*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateDelivered })
				require.True(t, delivered, "not delivered after the restart")
				require.Equal(t, bridge.RemoteID("$1"), rep.SourceID)
				waitQueueEmpty(t, h2.router)
				time.Sleep(300 * time.Millisecond) // a second delivery would show by now
				require.Equal(t, 1, ok.callCount(), "delivered exactly once")
			})
		})
	}
}
