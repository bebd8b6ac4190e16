package sms_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
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

// TestPacingThroughTheRouter: ten messages from two conversations that
// share a pool number go through the real router to the SMS connector and
// a fake Twilio. The number sends one segment per interval (100ms here,
// for a long code 1s), so most are paced: they wait in the durable queue
// and all ten are delivered — none dropped, none failed, though the router
// gives up after 3 attempts — in order per chat, at least an interval apart.
func TestPacingThroughTheRouter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		postgres bool
	}{{"sqlite", false}, {"postgres", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const interval = 100 * time.Millisecond
			e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: tc.postgres}
			e.start(e.twilio.srv.URL, func(cfg *config.Config) {
				cfg.Safety.SMSSegmentInterval = config.Duration(interval)
			})
			_, legA, _ := e.conversation(contactA, "!room-a")
			_, legB, _ := e.conversation("+14155550199", "!room-b")
			for _, leg := range []bridge.Leg{legA, legB} {
				pool, err := e.sms.PoolNumber(context.Background(), mustChat(t, e, leg))
				require.NoError(t, err)
				require.Equal(t, pool1, pool, "both chats send from the same pool number")
			}
			start := time.Now()
			for i := range 10 {
				leg := legA
				if i%2 == 1 {
					leg = legB
				}
				e.sendFromMatrix(leg, fmt.Sprintf("$m%d", i), fmt.Sprintf("msg %d", i))
			}
			reqs := e.twilio.waitRequests(t, 10)
			for i := range 10 {
				waitDelivered(t, e, fmt.Sprintf("$m%d", i))
			}
			elapsed := time.Since(start)
			time.Sleep(2 * interval)
			reqs = e.twilio.Requests()
			require.Len(t, reqs, 10, "each message sent exactly once")

			perChat := map[string][]string{}
			for _, r := range reqs {
				perChat[r.Get("To")] = append(perChat[r.Get("To")], r.Get("Body"))
			}
			require.Equal(t, []string{"msg 0", "msg 2", "msg 4", "msg 6", "msg 8"}, perChat[contactA])
			require.Equal(t, []string{"msg 1", "msg 3", "msg 5", "msg 7", "msg 9"}, perChat["+14155550199"])

			times := e.twilio.times()
			sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
			var gaps []time.Duration
			for i := 1; i < len(times); i++ {
				gap := times[i].Sub(times[i-1])
				gaps = append(gaps, gap.Round(time.Millisecond))
				// Each send waits for its slot; HTTP jitter on a loaded
				// machine can bring two arrivals a little closer.
				require.GreaterOrEqual(t, gap, interval/2, "sends %d and %d from one pool number", i-1, i)
			}
			require.GreaterOrEqual(t, times[len(times)-1].Sub(times[0]), 9*interval-interval/2, "ten sends take nine intervals")
			t.Logf("10 SMS at one per %s: all delivered in %s; gaps %v", interval, elapsed.Round(time.Millisecond), gaps)
			for _, st := range e.mx.Statuses() {
				require.NotEqual(t, bridge.StateFailed, st.State, "%v", st.Err)
				require.NotEqual(t, bridge.StateRetrying, st.State, "pacing is not reported as a retry")
			}
			n, err := e.router.QueueDepth(context.Background())
			require.NoError(t, err)
			require.Zero(t, n)
		})
	}
}

func mustChat(t *testing.T, e *env, mxLeg bridge.Leg) bridge.ChatID {
	conv, err := e.router.ConversationOf(context.Background(), mxLeg)
	require.NoError(t, err)
	legs, err := e.router.Legs(context.Background(), conv)
	require.NoError(t, err)
	for _, l := range legs {
		if l.Network == bridge.NetworkSMS {
			return l.Chat
		}
	}
	t.Fatal("no sms leg")
	return ""
}

// TestBeforeSendHook: the hook sees the destination's region and whether
// it is a high-cost prefix (never the number), once per delivery, and a
// permanent refusal reaches the sender as a failure.
func TestBeforeSendHook(t *testing.T) {
	var mu sync.Mutex
	var infos []sms.SendInfo
	e := newEnv(t, func(cfg *config.Config) {
		cfg.Safety.HighCostPrefixes = []string{"+1415555019"}
	})
	h := e.sms.Hooks()
	h.BeforeSend = func(_ context.Context, info sms.SendInfo) error {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, info)
		if info.HighCost {
			return bridge.Permanent(fmt.Errorf("too many SMS to high-cost destinations"))
		}
		return nil
	}
	e.sms.SetHooks(h)
	_, legA, _ := e.conversation(contactA, "!room-a")
	_, legB, _ := e.conversation("+14155550199", "!room-b")
	e.sendFromMatrix(legA, "$ok", "ordinary")
	e.sendFromMatrix(legB, "$hc", "premium")
	waitDelivered(t, e, "$ok")
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$hc" && r.State == bridge.StateFailed })
	require.True(t, ok)
	require.Contains(t, st.Err.Error(), "high-cost")
	require.Len(t, e.twilio.Requests(), 1)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, infos, 2)
	for _, info := range infos {
		require.Equal(t, "US", info.Region)
		require.Equal(t, bridge.UserID("@alice:example.org"), info.Sender)
		require.Equal(t, bridge.NetworkID("matrix"), info.SenderNetwork)
		require.Equal(t, 1, info.Segments)
	}
	// The two chats are separate lanes, delivered in either order.
	require.NotEqual(t, infos[0].HighCost, infos[1].HighCost, "exactly one destination is high-cost")
}

// TestInboundRefusedIsToldOncePerBurst: an inbound SMS the bridge's safety
// rules refuse is not delivered; the contact is told why in the webhook's
// TwiML reply the first time, and not again while the burst lasts (each
// reply is an SMS that costs money).
func TestInboundRefusedIsToldOncePerBurst(t *testing.T) {
	e := newEnv(t)
	_, _, _ = e.conversation(contactA, "!room-a")
	refusals := 0
	e.router.SetAdmitter(bridge.AdmitFunc(func(_ context.Context, a *bridge.Admission) error {
		if a.Event.Content != nil && a.Event.Content.Body == "ok" {
			return nil
		}
		refusals++
		return &bridge.RefusedError{Reason: "too many messages; wait 1m", RetryAfter: time.Minute, Repeat: refusals > 1}
	}))
	for i, tc := range []struct {
		body  string
		reply string
	}{
		{"ok", ""},
		{"flood 1", "<Message>Not delivered: too many messages; wait 1m.</Message>"},
		{"flood 2", ""},
	} {
		form := inbound(sid(900+i), contactA, pool1, tc.body)
		rec := e.post("/sms/twilio/incoming", form, sign("/sms/twilio/incoming", form))
		require.Equal(t, 200, rec.Code)
		if tc.reply == "" {
			require.NotContains(t, rec.Body.String(), "<Message>")
		} else {
			require.Contains(t, rec.Body.String(), tc.reply)
		}
	}
	sent := e.mx.WaitSent(1, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	require.Len(t, e.mx.Sent(), 1)
	require.Equal(t, "ok", sent[0].Delivery.Event.Content.Body)
	require.Equal(t, 2.0, counter(t, e, "sb_sms_messages_total", "result", "refused"))
}
