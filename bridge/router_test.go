package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/pgtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

const (
	netA bridge.NetworkID = "loopa"
	netB bridge.NetworkID = "loopb"
	netC bridge.NetworkID = "loopc"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// harness is a router with loopback connectors on one database.
type harness struct {
	t      testing.TB
	router *bridge.Router
	db     *dbutil.Database
	a, b   *bridgetest.Loopback
	extra  []bridge.Connector
	reg    *prometheus.Registry
	logs   *testenv.SyncBuffer
}

type harnessOpt func(*bridge.Options, *harness)

func withOptions(fn func(*bridge.Options)) harnessOpt {
	return func(o *bridge.Options, _ *harness) { fn(o) }
}

func withConnector(c bridge.Connector) harnessOpt {
	return func(_ *bridge.Options, h *harness) { h.extra = append(h.extra, c) }
}

func startHarness(t testing.TB, dbo database.Options, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, a: bridgetest.NewLoopback(netA), b: bridgetest.NewLoopback(netB), reg: prometheus.NewRegistry(), logs: &testenv.SyncBuffer{}}
	log := zerolog.New(h.logs).Level(zerolog.DebugLevel)
	db, err := database.Open(context.Background(), dbo, log)
	require.NoError(t, err)
	o := bridge.Options{
		DB: db, Secret: testSecret, Log: log, Registerer: h.reg,
		RetryBase: 20 * time.Millisecond, RetryMax: time.Second,
		Lease: 2 * time.Second, PollInterval: 100 * time.Millisecond,
	}
	for _, fn := range opts {
		fn(&o, h)
	}
	r, err := bridge.New(o)
	require.NoError(t, err)
	require.NoError(t, r.Register(h.a))
	require.NoError(t, r.Register(h.b))
	for _, c := range h.extra {
		require.NoError(t, r.Register(c))
	}
	require.NoError(t, r.Start(context.Background()))
	h.router, h.db = r, r.DB()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() {
	if h.router != nil {
		_ = h.router.Stop(context.Background())
		_ = h.db.Close()
		h.router = nil
	}
}

func (h *harness) conversation(legs ...bridge.Leg) bridge.ConversationID {
	h.t.Helper()
	id, err := h.router.CreateConversation(context.Background(), legs...)
	require.NoError(h.t, err)
	return id
}

func legA(chat string) bridge.Leg { return bridge.Leg{Network: netA, Chat: bridge.ChatID(chat)} }
func legB(chat string) bridge.Leg { return bridge.Leg{Network: netB, Chat: bridge.ChatID(chat)} }

func text(chat, id, body string) *bridge.Event {
	return &bridge.Event{
		Kind:     bridge.KindMessage,
		Source:   bridge.Leg{Chat: bridge.ChatID(chat)},
		SourceID: bridge.RemoteID(id),
		Sender:   bridge.Sender{ID: "alice", DisplayName: "Alice"},
		Content:  &bridge.Content{Type: bridge.MsgText, Body: body},
	}
}

func bodies(sent []bridgetest.Sent) []string {
	out := make([]string, len(sent))
	for i, s := range sent {
		if s.Delivery.Event.Content != nil {
			out[i] = s.Delivery.Event.Content.Body
		}
	}
	return out
}

func waitQueueEmpty(t testing.TB, r *bridge.Router) {
	t.Helper()
	require.Eventually(t, func() bool {
		n, err := r.QueueDepth(context.Background())
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "queue never drained")
}

func TestDeliveryInOrderPerConversation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		c := bridgetest.NewLoopback(netC)
		h := startHarness(t, dbo, withConnector(c), withOptions(func(o *bridge.Options) { o.Workers = 8 }))
		const convs, perConv = 6, 60
		for i := 0; i < convs; i++ {
			chat := "chat" + strconv.Itoa(i)
			h.conversation(legA(chat), legB(chat), bridge.Leg{Network: netC, Chat: bridge.ChatID(chat)})
		}
		var wg sync.WaitGroup
		for i := 0; i < convs; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chat := "chat" + strconv.Itoa(i)
				for j := 0; j < perConv; j++ {
					require.NoError(t, h.a.Receive(context.Background(), text(chat, fmt.Sprintf("%s-%d", chat, j), strconv.Itoa(j))))
				}
			}()
		}
		wg.Wait()
		for _, dest := range []*bridgetest.Loopback{h.b, c} {
			sent := dest.WaitSent(convs*perConv, 15*time.Second)
			require.Len(t, bodies(sent), convs*perConv)
			next := map[bridge.ChatID]int{}
			for _, s := range sent {
				require.Equal(t, strconv.Itoa(next[s.Chat]), s.Delivery.Event.Content.Body, "out of order in %s", s.Chat)
				next[s.Chat]++
			}
		}
		waitQueueEmpty(t, h.router)
		require.Equal(t, float64(convs*perConv), metricValue(h, "switchboard_messages_total", map[string]string{"network": "loopa", "direction": "in", "result": "accepted"}))
	})
}

// metricValue reads one counter or gauge from the harness's registry (0 if absent).
func metricValue(h *harness, name string, labels map[string]string) float64 {
	mfs, err := h.reg.Gather()
	require.NoError(h.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if lp.GetValue() != labels[lp.GetName()] {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestDuplicateSourceEventDeliveredOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("x"), legB("x"))
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("x", "evt-1", "hello")))
		require.NoError(t, h.a.Receive(ctx, text("x", "evt-1", "hello")))
		require.NoError(t, h.a.Receive(ctx, text("x", "evt-2", "second")))
		sent := h.b.WaitSent(2, 5*time.Second)
		waitQueueEmpty(t, h.router)
		// A redelivery after everything was delivered is still a duplicate.
		require.NoError(t, h.a.Receive(ctx, text("x", "evt-1", "hello")))
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, []string{"hello", "second"}, bodies(h.b.Sent()))
		require.Len(t, sent, 2)
		require.Equal(t, float64(2), metricValue(h, "switchboard_messages_total", map[string]string{"network": "loopa", "direction": "in", "result": "duplicate"}))
	})
}

func TestIDMapTranslatesRepliesEditsReactionsDeletes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$orig", "original")))
		first := h.b.WaitSent(1, 5*time.Second)
		require.Len(t, first, 1)
		bID := first[0].RemoteID

		steps := []struct {
			evt  *bridge.Event
			kind bridge.Kind
		}{
			{&bridge.Event{Kind: bridge.KindEdit, Source: legA("room"), SourceID: "$edit", Target: "$orig", Content: &bridge.Content{Type: bridge.MsgText, Body: "edited"}}, bridge.KindEdit},
			{&bridge.Event{Kind: bridge.KindReaction, Source: legA("room"), SourceID: "$react", Target: "$orig", Reaction: "👍"}, bridge.KindReaction},
			{&bridge.Event{Kind: bridge.KindReadReceipt, Source: legA("room"), SourceID: "$read", Target: "$orig"}, bridge.KindReadReceipt},
			{&bridge.Event{Kind: bridge.KindDelete, Source: legA("room"), SourceID: "$redact", Target: "$orig"}, bridge.KindDelete},
		}
		for i, step := range steps {
			require.NoError(t, h.a.Receive(ctx, step.evt))
			sent := h.b.WaitSent(i+2, 5*time.Second)
			require.Len(t, sent, i+2)
			got := sent[i+1]
			require.Equal(t, step.kind, got.Kind)
			require.Equal(t, bID, got.Delivery.Target, "%s target not translated", step.kind)
		}

		// The other direction: B replies to its copy, A sees its own ID.
		reply := text("chat", "b-reply", "answer")
		reply.ReplyTo = bID
		require.NoError(t, h.b.Receive(ctx, reply))
		got := h.a.WaitSent(1, 5*time.Second)
		require.Len(t, got, 1)
		require.Equal(t, bridge.RemoteID("$orig"), got[0].Delivery.ReplyTo)

		// An edit of a message the bridge never saw is refused, not queued.
		err := h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindEdit, Source: legA("room"), SourceID: "$e2", Target: "$unknown", Content: &bridge.Content{Type: bridge.MsgText, Body: "x"}})
		require.ErrorIs(t, err, bridge.ErrTargetUnknown)
	})
}

func TestBadInputRefusedWithNothingQueued(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		evt  *bridge.Event
		want error
	}{
		{"unknown leg", text("nowhere", "1", "x"), bridge.ErrUnknownLeg},
		{"no content", &bridge.Event{Kind: bridge.KindMessage, Source: legA("room"), SourceID: "2"}, bridge.ErrInvalidEvent},
		{"no source id", &bridge.Event{Kind: bridge.KindMessage, Source: legA("room"), Content: &bridge.Content{Type: bridge.MsgText}}, bridge.ErrInvalidEvent},
		{"unknown kind", &bridge.Event{Kind: "poke", Source: legA("room"), SourceID: "3"}, bridge.ErrInvalidEvent},
		{"media without media", &bridge.Event{Kind: bridge.KindMessage, Source: legA("room"), SourceID: "4", Content: &bridge.Content{Type: bridge.MsgImage}}, bridge.ErrInvalidEvent},
		{"reaction without key", &bridge.Event{Kind: bridge.KindReaction, Source: legA("room"), SourceID: "5", Target: "1"}, bridge.ErrInvalidEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, h.a.Receive(ctx, tc.evt), tc.want)
		})
	}
	n, err := h.router.QueueDepth(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, h.b.Sent())
}

func TestPermanentFailureReportedToSender(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		h.b.OnSend(func(d *bridge.Delivery) error {
			if d.Event.Content != nil && d.Event.Content.Body == "bad" {
				return bridge.Permanent(errors.New("recipient unsubscribed"))
			}
			return nil
		})
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "bad")))
		require.NoError(t, h.a.Receive(ctx, text("room", "$2", "good")))
		rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
		require.True(t, ok, "sender never told about the failure")
		require.Equal(t, bridge.RemoteID("$1"), rep.SourceID)
		require.Equal(t, legB("chat"), rep.Destination)
		require.ErrorIs(t, rep.Err, bridge.ErrPermanent)
		require.ErrorContains(t, rep.Err, "unsubscribed")
		require.Equal(t, []string{"good"}, bodies(h.b.WaitSent(1, 5*time.Second)))
		waitQueueEmpty(t, h.router)
	})
}

// minimal implements only the required Connector interface.
type minimal struct {
	network bridge.NetworkID
	mu      sync.Mutex
	got     []bridge.RemoteID
}

var _ bridge.Connector = (*minimal)(nil)

func (m *minimal) Network() bridge.NetworkID   { return m.network }
func (m *minimal) Init(bridge.Host)            {}
func (m *minimal) Start(context.Context) error { return nil }
func (m *minimal) Stop(context.Context) error  { return nil }
func (m *minimal) SendMessage(_ context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := bridge.RemoteID("min-" + strconv.Itoa(len(m.got)))
	m.got = append(m.got, id)
	return id, nil
}

func TestUnsupportedActionAnswersNotSupported(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		m := &minimal{network: netC}
		h := startHarness(t, dbo, withConnector(m))
		h.conversation(legA("room"), bridge.Leg{Network: netC, Chat: "c"})
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "hi")))
		for _, evt := range []*bridge.Event{
			{Kind: bridge.KindEdit, Source: legA("room"), SourceID: "$2", Target: "$1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi!"}},
			{Kind: bridge.KindReaction, Source: legA("room"), SourceID: "$3", Target: "$1", Reaction: "❤️"},
			{Kind: bridge.KindDelete, Source: legA("room"), SourceID: "$4", Target: "$1"},
			{Kind: bridge.KindMessage, Source: legA("room"), SourceID: "$5", Content: &bridge.Content{Type: bridge.MsgImage, Media: &bridge.Media{Ref: "img"}}},
		} {
			require.NoError(t, h.a.Receive(ctx, evt))
			rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == evt.SourceID })
			require.True(t, ok, "no status for %s", evt.Kind)
			require.Equal(t, bridge.StateFailed, rep.State)
			var ns *bridge.NotSupportedError
			require.ErrorAs(t, rep.Err, &ns, "%s", evt.Kind)
			require.ErrorIs(t, rep.Err, bridge.ErrNotSupported)
			require.Equal(t, netC, ns.Network)
		}
		require.Len(t, m.got, 1)
		waitQueueEmpty(t, h.router)
	})
}

func TestTransientFailureRetriedWithBackoff(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) { o.RetryBase = 60 * time.Millisecond }))
		h.conversation(legA("room"), legB("chat"))
		var mu sync.Mutex
		var attempts []time.Time
		h.b.OnSend(func(d *bridge.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, time.Now())
			if len(attempts) < 4 {
				return errors.New("connection reset")
			}
			return nil
		})
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "eventually")))
		require.NoError(t, h.a.Receive(ctx, text("room", "$2", "after it")))
		sent := h.b.WaitSent(2, 10*time.Second)
		require.Equal(t, []string{"eventually", "after it"}, bodies(sent), "the retried message must not be overtaken")
		mu.Lock()
		require.Len(t, attempts, 5)
		g1, g2, g3 := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1]), attempts[3].Sub(attempts[2])
		mu.Unlock()
		// Each wait is at least the base doubled per attempt, less the
		// 20% jitter. A busy machine only makes gaps longer (the wait starts
		// after the failed attempt), so only lower bounds are asserted.
		require.GreaterOrEqual(t, g1, 48*time.Millisecond, "first retry waits RetryBase")
		require.GreaterOrEqual(t, g2, 96*time.Millisecond, "backoff must double")
		require.GreaterOrEqual(t, g3, 192*time.Millisecond, "backoff must double again")
		_, ok := h.a.WaitStatus(time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateRetrying })
		require.True(t, ok, "sender not told about the delay")
		require.Equal(t, float64(3), metricValue(h, "switchboard_delivery_retries_total", map[string]string{"network": "loopb"}))
	})
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t), withOptions(func(o *bridge.Options) {
		o.MaxAttempts = 3
		o.RetryBase = 5 * time.Millisecond
	}))
	h.conversation(legA("room"), legB("chat"))
	h.b.OnSend(func(*bridge.Delivery) error { return errors.New("down") })
	require.NoError(t, h.a.Receive(context.Background(), text("room", "$1", "lost?")))
	rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
	require.True(t, ok)
	require.ErrorContains(t, rep.Err, "gave up after 3 attempts")
	waitQueueEmpty(t, h.router)
}

func TestPanicInConnectorRecovered(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		h.b.OnSend(func(d *bridge.Delivery) error {
			if d.Event.Content.Body == "boom" {
				panic("nil map write in connector")
			}
			return nil
		})
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "boom")))
		require.NoError(t, h.a.Receive(ctx, text("room", "$2", "still alive")))
		rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
		require.True(t, ok)
		require.ErrorIs(t, rep.Err, bridge.ErrConnectorPanic)
		require.Equal(t, []string{"still alive"}, bodies(h.b.WaitSent(1, 5*time.Second)))
		require.Contains(t, string(h.logs.Bytes()), "Recovered panic in connector")
		require.Equal(t, float64(1), metricValue(h, "switchboard_connector_panics_total", map[string]string{"network": "loopb"}))
	})
}

func TestMediaAndTyping(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	h.a.PutMedia("mxc://x/y", []byte("PNGDATA"))
	require.NoError(t, h.a.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: legA("room"), SourceID: "$img",
		Content: &bridge.Content{Type: bridge.MsgImage, Body: "cat.png", Media: &bridge.Media{Ref: "mxc://x/y", MimeType: "image/png"}},
	}))
	sent := h.b.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	require.Equal(t, []byte("PNGDATA"), sent[0].Media)

	// ReadMedia: the whole attachment up to the limit; above it, a
	// permanent failure reported to the sender.
	var within []byte
	h.b.OnSend(func(d *bridge.Delivery) error {
		data, err := d.ReadMedia(ctx, len("PNGDATA"))
		if err != nil {
			return err
		}
		within = data
		_, err = d.ReadMedia(ctx, len("PNGDATA")-1)
		return err
	})
	require.NoError(t, h.a.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: legA("room"), SourceID: "$big",
		Content: &bridge.Content{Type: bridge.MsgImage, Body: "cat.png", Media: &bridge.Media{Ref: "mxc://x/y", MimeType: "image/png"}},
	}))
	st, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$big" && r.State == bridge.StateFailed })
	require.True(t, ok)
	require.ErrorIs(t, st.Err, bridge.ErrMediaTooLarge)
	require.ErrorIs(t, st.Err, bridge.ErrPermanent)
	require.Equal(t, []byte("PNGDATA"), within)
	h.b.OnSend(nil)

	require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindTyping, Source: legA("room"), Typing: true}))
	require.Eventually(t, func() bool { return len(h.b.Typing()) == 1 }, 5*time.Second, 10*time.Millisecond)
}

func TestTwoRoutersOnOneDatabaseDeliverOnceInOrder(t *testing.T) {
	// Two routers with separate owners stand in for two processes.
	dsn := pgtest.DSN(t)
	dbo := database.Options{Type: database.TypePostgres, URI: dsn}
	h1 := startHarness(t, dbo)
	h2 := startHarness(t, dbo)
	h1.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	const n = 200
	for i := 0; i < n; i++ {
		src := h1.a
		if i%2 == 1 {
			src = h2.a
		}
		require.NoError(t, src.Receive(ctx, text("room", "$"+strconv.Itoa(i), strconv.Itoa(i))))
	}
	require.Eventually(t, func() bool { return len(h1.b.Sent())+len(h2.b.Sent()) >= n }, 20*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	all := append(h1.b.Sent(), h2.b.Sent()...)
	require.Len(t, bodies(all), n, "each message exactly once")
	// Each router's own deliveries are in order, and no message is seen twice.
	seen := map[string]bool{}
	for _, part := range [][]bridgetest.Sent{h1.b.Sent(), h2.b.Sent()} {
		last := -1
		for _, s := range part {
			v, _ := strconv.Atoi(s.Delivery.Event.Content.Body)
			require.Greater(t, v, last)
			last = v
			require.False(t, seen[s.Delivery.Event.Content.Body])
			seen[s.Delivery.Event.Content.Body] = true
		}
	}
	waitQueueEmpty(t, h1.router)
}

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(runCrashChild())
	}
	os.Exit(m.Run())
}

func TestReportStatusReachesTheSource(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo)
		h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, text("room", "$1", "hello")))
		sent := h.b.WaitSent(1, 5*time.Second)
		require.Len(t, sent, 1)
		waitQueueEmpty(t, h.router)
		msg := sent[0].Delivery.Message

		// Later, the destination network says it never arrived.
		require.NoError(t, h.router.ReportStatus(ctx, msg, legB("chat"), bridge.StateFailed, errors.New("carrier: undelivered")))
		rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
		require.True(t, ok)
		require.Equal(t, bridge.RemoteID("$1"), rep.SourceID)
		require.Equal(t, legB("chat"), rep.Destination)
		require.ErrorContains(t, rep.Err, "undelivered")

		require.ErrorIs(t, h.router.ReportStatus(ctx, "m_unknown", legB("chat"), bridge.StateFailed, nil), bridge.ErrTargetUnknown)
	})
}
