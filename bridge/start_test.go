package bridge_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// slowStart is a loopback connector whose Start takes a while, as a real
// one's does (migrations, a homeserver check), and which records whether
// the router handed it a delivery before Start returned.
type slowStart struct {
	*bridgetest.Loopback
	started atomic.Bool
	early   atomic.Int32
}

func (s *slowStart) Start(ctx context.Context) error {
	time.Sleep(300 * time.Millisecond)
	if err := s.Loopback.Start(ctx); err != nil {
		return err
	}
	s.started.Store(true)
	return nil
}

var errNotYet = errors.New("not yet")

// TestRecoveredDeliveriesWaitForConnectorStart: a message an earlier run
// left queued is delivered only once its destination connector has
// started (workers ran it while Start was still setting the connector up,
// a data race the SMS fixture test caught under -race).
func TestRecoveredDeliveriesWaitForConnectorStart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		h := startHarness(t, dbo)
		h.b.OnSend(func(*bridge.Delivery) error { return errNotYet })
		h.conversation(legA("room"), legB("chat"))
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "left queued")))
		time.Sleep(200 * time.Millisecond) // tried and failed at least once
		h.stop()

		slow := &slowStart{Loopback: bridgetest.NewLoopback(netB)}
		slow.OnSend(func(*bridge.Delivery) error {
			if !slow.started.Load() {
				slow.early.Add(1)
			}
			return nil
		})
		db, err := database.Open(ctx, dbo, zerolog.Nop())
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		r, err := bridge.New(bridge.Options{DB: db, Secret: testSecret, Log: zerolog.Nop(),
			RetryBase: 20 * time.Millisecond, RetryMax: time.Second, Lease: 2 * time.Second, PollInterval: 100 * time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, r.Register(bridgetest.NewLoopback(netA)))
		require.NoError(t, r.Register(slow))
		require.NoError(t, r.Start(ctx))
		t.Cleanup(func() { _ = r.Stop(ctx) })
		require.Equal(t, []string{"left queued"}, bodies(slow.WaitSent(1, 10*time.Second)))
		require.Zero(t, slow.early.Load(), "no delivery before the connector's Start returned")
	})
}
