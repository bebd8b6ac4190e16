package matrix_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// reportLatencies reports messages/s and p50/p99 latency from a send on
// Matrix to the loopback connector's record.
func reportLatencies(b *testing.B, started []time.Time, sent []time.Time, elapsed time.Duration) {
	b.Helper()
	lat := make([]time.Duration, len(sent))
	for i := range sent {
		lat[i] = sent[i].Sub(started[i])
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	b.ReportMetric(float64(len(sent))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkMatrixToLoopback: plain messages sent by a Matrix user through
// a real Dendrite and the appservice API to the loopback connector. Each
// message is sent after the previous one arrived (latency), then the whole
// run gives the rate.
func BenchmarkMatrixToLoopback(b *testing.B) {
	e := startWithDendrite(b)
	alice := e.newUser(b, "alice")
	chat, err := e.conn.CreatePortal(b.Context(), matrix.PortalOptions{
		User: idOf(alice), Network: netLoop, Contact: bridge.Sender{ID: "bench", DisplayName: "Bench"}, Direct: true,
	})
	require.NoError(b, err)
	_, err = e.router.CreateConversation(b.Context(),
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: chat},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(b, err)
	room := string(chat)
	alice.join(b, room)
	b.ResetTimer()
	var started []time.Time
	begin := time.Now()
	for i := 0; b.Loop(); i++ {
		started = append(started, time.Now())
		alice.sendText(b, room, fmt.Sprintf("bench %d", i))
		e.lb.WaitSent(i+1, 10*time.Second)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	var at []time.Time
	for _, s := range e.lb.Sent() {
		at = append(at, s.At)
	}
	require.Len(b, at, len(started))
	reportLatencies(b, started, at, elapsed)
}
