package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/periodic"
)

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		periodic.Run(ctx, 5*time.Millisecond, func(context.Context) { n.Add(1) })
		close(done)
	}()
	require.Eventually(t, func() bool { return n.Load() >= 3 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	stopped := n.Load()
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, stopped, n.Load(), "nothing runs after Run returned")
}
