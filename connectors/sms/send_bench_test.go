package sms_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// tlsTwilio is a fake Twilio Messages API over TLS, as the real one is
// reached: it answers 201 with a message resource and counts the
// connections (each a TLS handshake) the connector opened.
type tlsTwilio struct {
	srv   *httptest.Server
	n     atomic.Int64
	conns atomic.Int64
}

// sslCertOnce points the process's system roots at the first tlsTwilio's
// certificate: the connector trusts the system roots (SSL_CERT_FILE), as
// the daemon does, and Go reads them once.
var sslCertOnce sync.Once

func newTLSTwilio(b *testing.B) *tlsTwilio {
	f := &tlsTwilio{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := f.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"SM%032x","status":"queued","body":"","to":"","from":"","num_segments":"1"}`, n)
	}))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.StartTLS()
	b.Cleanup(f.srv.Close)
	sslCertOnce.Do(func() {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("sms-bench-ca-%d.pem", os.Getpid()))
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
		require.NoError(b, os.WriteFile(path, pemBytes, 0o600))
		b.Setenv("SSL_CERT_FILE", path)
	})
	return f
}

// BenchmarkSendMessage sends plain messages through SendMessage to a fake
// Twilio over TLS (each op is one message, so allocs/op is per message),
// in order within each chat and chats in parallel, on each database. It
// reports msgs/s and the TLS connections opened (conns): with keep-alive
// that is one per chat sending at once, not one per message.
func BenchmarkSendMessage(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, chats := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/chats=%d", backend, chats), func(b *testing.B) {
				benchSend(b, backend == "postgres", chats)
			})
		}
	}
}

func benchSend(b *testing.B, postgres bool, chats int) {
	tw := newTLSTwilio(b)
	e := &env{t: b, logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: postgres}
	e.start(tw.srv.URL)
	legs := make([]bridge.Leg, chats)
	convs := make([]bridge.ConversationID, chats)
	for i := range legs {
		contact := fmt.Sprintf("+1415555%04d", 1000+i)
		convs[i], _, legs[i] = e.conversation(contact, fmt.Sprintf("!room%d", i))
	}
	workers := min(chats, 4) // the router's default delivery workers
	ctx := context.Background()
	send := func(i int) {
		k := i % chats
		d := &bridge.Delivery{
			// Numbered as the router numbers deliveries (its queue seq).
			ID: bridge.DeliveryID(strconv.Itoa(i + 1)), Conversation: convs[k], Message: bridge.MessageID(fmt.Sprintf("msg-%d", i)),
			Chat: legs[k].Chat, Attempt: 1,
			Event: &bridge.Event{
				Kind: bridge.KindMessage, Source: bridge.Leg{Network: netMatrix, Chat: bridge.ChatID(fmt.Sprintf("!room%d", k))},
				SourceID: bridge.RemoteID(fmt.Sprintf("$e%d", i)), Sender: bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"},
				Content: &bridge.Content{Type: bridge.MsgText, Body: fmt.Sprintf("bench message %d", i)},
			},
		}
		if _, err := e.sms.SendMessage(ctx, d); err != nil {
			b.Errorf("send %d: %v", i, err)
		}
	}
	send(-chats) // warm up: one connection, the caches
	tw.conns.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	begin, cpu0 := time.Now(), cpuTime(b)
	// Messages go round robin over the chats, several at once as the
	// router's delivery workers send them.
	spread(workers, b.N, send)
	elapsed, cpu := time.Since(begin), cpuTime(b)-cpu0
	b.StopTimer()
	// The process's CPU time (user and system, the fake Twilio's included)
	// per message: steadier than ns/op on a shared machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(tw.conns.Load()), "conns")
}

// cpuTime is the CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSendState is what each send asks before calling Twilio: the
// contact's opt-out and the parts of the delivery already sent. "query"
// is a delivery whose parts must be looked up (and every send on
// PostgreSQL), one statement for both; "memory" a delivery no attempt
// wrote parts for, on SQLite, answered from memory.
func BenchmarkSendState(b *testing.B) {
	for _, tc := range []struct {
		name     string
		postgres bool
		id       func(i int) bridge.DeliveryID
	}{
		{"sqlite/query", false, func(int) bridge.DeliveryID { return "not-numbered" }},
		{"sqlite/memory", false, func(i int) bridge.DeliveryID { return bridge.DeliveryID(strconv.Itoa(i + 1)) }},
		{"postgres/query", true, func(i int) bridge.DeliveryID { return bridge.DeliveryID(strconv.Itoa(i + 1)) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := &env{t: b, twilio: newFakeTwilio(b), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: tc.postgres}
			e.start(e.twilio.srv.URL)
			_, _, leg := e.conversation(contactA, "!room1")
			ctx := context.Background()
			_, _, err := sms.SendState(ctx, e.sms, leg.Chat, tc.id(0))
			require.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, _, err := sms.SendState(ctx, e.sms, leg.Chat, tc.id(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRouterToSMS is the daemon's path for a Matrix message to SMS:
// the loopback leg submits it (the router's durable accept), the router
// delivers it through SendMessage to a fake Twilio over TLS, and the sent
// SMS's row rides the commit that finishes the delivery
// (Delivery.OnCommit). It reports the process's CPU per message.
func BenchmarkRouterToSMS(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			tw := newTLSTwilio(b)
			e := &env{t: b, logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: backend == "postgres"}
			e.start(tw.srv.URL, func(cfg *config.Config) { cfg.Retention.Metadata = 0 })
			const chats = 4
			legs := make([]bridge.Leg, chats)
			for i := range legs {
				_, legs[i], _ = e.conversation(fmt.Sprintf("+1415555%04d", 1000+i), fmt.Sprintf("!room%d", i))
			}
			ctx := context.Background()
			submit := func(i int) {
				leg := legs[(i+chats)%chats]
				err := e.mx.Receive(ctx, &bridge.Event{
					Kind: bridge.KindMessage, Source: leg, SourceID: bridge.RemoteID(fmt.Sprintf("$e%d", i)),
					Sender:  bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"},
					Content: &bridge.Content{Type: bridge.MsgText, Body: fmt.Sprintf("bench message %d", i)},
				})
				if err != nil {
					b.Errorf("submit %d: %v", i, err)
				}
			}
			wait := func(n int64) {
				deadline := time.Now().Add(time.Minute)
				for tw.n.Load() < n {
					if time.Now().After(deadline) {
						b.Fatalf("Twilio got %d messages, want %d", tw.n.Load(), n)
					}
					time.Sleep(time.Millisecond)
				}
			}
			for i := range chats {
				submit(-1 - i) // warm up
			}
			wait(chats)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			spread(chats, b.N, submit)
			wait(int64(chats + b.N))
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// spread calls f(0) … f(n-1), from workers goroutines at once, and waits.
func spread(workers, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
