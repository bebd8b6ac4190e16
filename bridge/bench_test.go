package bridge_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// BenchmarkRouter measures messages routed per second through the router
// into the loopback connector with durable delivery (accept = sealed row
// committed, delivery = connector call + row deleted + ID map row written),
// with 64 senders submitting as fast as they can. Latency under this
// open-loop flood is only queueing; BenchmarkRouterLatency measures it.
//
//	go test -run '^$' -bench Router -benchtime 20000x ./bridge
func BenchmarkRouter(b *testing.B) {
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			benchRouter(b, be.Options(b))
		})
	}
}

// benchSenders starts a harness with one conversation per sender and runs
// send(g, chat, i) for i in [0, b.N), spread over the senders, returning
// once all calls returned.
func benchSenders(b *testing.B, dbo database.Options, senders int, setup func(h *harness), send func(h *harness, chat string, i int) bool, opts ...harnessOpt) *harness {
	h := startHarness(b, dbo, append([]harnessOpt{withOptions(func(o *bridge.Options) { o.Workers = 8 })}, opts...)...)
	for i := 0; i < senders; i++ {
		chat := "c" + strconv.Itoa(i)
		h.conversation(legA(chat), legB(chat))
	}
	setup(h)
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chat := "c" + strconv.Itoa(g)
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N || !send(h, chat, i) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return h
}

// BenchmarkRouterAdmitted is BenchmarkRouter with an Admitter that accepts
// everything: the cost of admission itself (one read of the sibling legs
// per event), without what a real admitter decides.
//
//	go test -run '^$' -bench RouterAdmitted -benchtime 20000x ./bridge
func BenchmarkRouterAdmitted(b *testing.B) {
	accept := bridge.AdmitFunc(func(context.Context, *bridge.Admission) error { return nil })
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			benchRouter(b, be.Options(b), withOptions(func(o *bridge.Options) { o.Admitter = accept }))
		})
	}
}

func benchRouter(b *testing.B, dbo database.Options, opts ...harnessOpt) {
	ctx := context.Background()
	var start time.Time
	h := benchSenders(b, dbo, 64, func(*harness) { start = time.Now() }, func(h *harness, chat string, i int) bool {
		if err := h.a.Receive(ctx, text(chat, "m"+strconv.Itoa(i), strconv.Itoa(i))); err != nil {
			b.Error(err)
			return false
		}
		return true
	}, opts...)
	sent := h.b.WaitSent(b.N, 5*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	require.Len(b, sent, b.N)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRouterLatency measures the latency the router adds at a load it
// sustains: 8 senders, each waiting for its message to reach the loopback
// connector before sending the next (closed loop).
func BenchmarkRouterLatency(b *testing.B) {
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			benchLatency(b, be.Options(b))
		})
	}
}

func benchLatency(b *testing.B, dbo database.Options) {
	const senders = 8
	arrived := make(map[bridge.ChatID]chan time.Time, senders)
	for i := 0; i < senders; i++ {
		arrived[bridge.ChatID("c"+strconv.Itoa(i))] = make(chan time.Time, 1)
	}
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var start time.Time
	benchSenders(b, dbo, senders, func(h *harness) {
		start = time.Now()
		h.b.OnSend(func(d *bridge.Delivery) error {
			arrived[d.Chat] <- time.Now()
			return nil
		})
	}, func(h *harness, chat string, i int) bool {
		t0 := time.Now()
		if err := h.a.Receive(ctx, text(chat, "m"+strconv.Itoa(i), "x")); err != nil {
			b.Error(err)
			return false
		}
		select {
		case t1 := <-arrived[bridge.ChatID(chat)]:
			lat[i] = t1.Sub(t0)
			return true
		case <-time.After(time.Minute):
			b.Error("message not delivered")
			return false
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// pathSenders is how many conversations (one sender each) the accept and
// deliver benchmarks use.
const pathSenders = 8

// BenchmarkRouterAccept measures the accept path alone: 8 senders submit
// b.N messages (each Submit returns once its sealed row is committed) while
// the destination holds every delivery back, so no delivery competes with
// the accepts. msg/s is accepted messages per second; allocs/op and B/op
// are per message, over the whole process (database driver included).
//
//	go test -tags goolm -run '^$' -bench RouterAccept -benchtime 20000x -count 5 ./bridge
func BenchmarkRouterAccept(b *testing.B) {
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			h, gate := gatedHarness(b, be.Options(b))
			b.ReportAllocs()
			start := time.Now()
			b.ResetTimer()
			submitAll(b, h, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			close(gate)
			require.Len(b, h.b.WaitSent(b.N, 5*time.Minute), b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRouterDeliver measures the deliver path alone: b.N messages are
// accepted while the destination holds deliveries back, then it is let go
// and the clock runs until every message reached the loopback connector and
// every queue row is deleted (completions committed, ID map rows written).
// allocs/op and B/op are per message.
//
//	go test -tags goolm -run '^$' -bench RouterDeliver -benchtime 20000x -count 5 ./bridge
func BenchmarkRouterDeliver(b *testing.B) {
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			h, gate := gatedHarness(b, be.Options(b))
			submitAll(b, h, b.N)
			b.ReportAllocs()
			start := time.Now()
			b.ResetTimer()
			close(gate)
			require.Len(b, h.b.WaitSent(b.N, 5*time.Minute), b.N)
			for {
				n, err := h.router.QueueDepth(context.Background())
				require.NoError(b, err)
				if n == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// gatedHarness starts a harness with pathSenders conversations whose B side
// holds every delivery until gate is closed.
func gatedHarness(b *testing.B, dbo database.Options) (*harness, chan struct{}) {
	h := startHarness(b, dbo, withOptions(func(o *bridge.Options) { o.Workers = 8 }))
	for i := 0; i < pathSenders; i++ {
		chat := "c" + strconv.Itoa(i)
		h.conversation(legA(chat), legB(chat))
	}
	gate := make(chan struct{})
	h.b.OnSend(func(*bridge.Delivery) error {
		<-gate
		return nil
	})
	b.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	return h, gate
}

// submitAll submits n messages from pathSenders senders, each waiting for
// its Submit to return before the next (as a connector does).
func submitAll(b *testing.B, h *harness, n int) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < pathSenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chat := "c" + strconv.Itoa(g)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := h.a.Receive(ctx, text(chat, "m"+strconv.Itoa(i), strconv.Itoa(i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRouterAcceptBatch is the accept path as a homeserver drives it:
// one sender, transactions of 50 events, each accepted with one
// SubmitBatch (one commit) before the next; deliveries are held back.
//
//	go test -tags goolm -run '^$' -bench RouterAcceptBatch -benchtime 20000x -count 5 ./bridge
func BenchmarkRouterAcceptBatch(b *testing.B) {
	const perTxn = 50
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			h, gate := gatedHarness(b, be.Options(b))
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i += perTxn {
				evts := make([]*bridge.Event, 0, perTxn)
				for j := i; j < min(i+perTxn, b.N); j++ {
					e := text("c0", "m"+strconv.Itoa(j), strconv.Itoa(j))
					e.Source.Network = netA
					evts = append(evts, e)
				}
				for _, err := range h.router.SubmitBatch(ctx, evts) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			close(gate)
			require.Len(b, h.b.WaitSent(b.N, 5*time.Minute), b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
