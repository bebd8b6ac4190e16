package bridge_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
)

const serverDefault = 24 * time.Hour

// setting is a conversation setting in the policy table.
type setting struct {
	name string
	keep time.Duration
	off  bool
}

var (
	unset   = setting{name: "unset"}
	off     = setting{name: "off", off: true}
	conv30m = setting{name: "30m", keep: 30 * time.Minute}
	conv2h  = setting{name: "2h", keep: 2 * time.Hour}
)

// policyCases covers every combination of network default (none, 1h on
// loopb) × conversation setting (unset, off, 30m, 2h) × message timer (none,
// 10m, 3h), with a 24h server default. Ties never occur; the strictest
// wins, and "off" drops only the server default.
var policyCases = []struct {
	network time.Duration
	setting setting
	timer   time.Duration
	keep    time.Duration
	source  string
}{
	{0, unset, 0, serverDefault, "server default"},
	{0, unset, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{0, unset, 3 * time.Hour, 3 * time.Hour, "message timer"},
	{0, off, 0, 0, "nothing"},
	{0, off, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{0, off, 3 * time.Hour, 3 * time.Hour, "message timer"},
	{0, conv30m, 0, 30 * time.Minute, "conversation setting"},
	{0, conv30m, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{0, conv30m, 3 * time.Hour, 30 * time.Minute, "conversation setting"},
	{0, conv2h, 0, 2 * time.Hour, "conversation setting"},
	{0, conv2h, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{0, conv2h, 3 * time.Hour, 2 * time.Hour, "conversation setting"},
	{time.Hour, unset, 0, time.Hour, "network loopb"},
	{time.Hour, unset, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{time.Hour, unset, 3 * time.Hour, time.Hour, "network loopb"},
	// "off" is refused by SetConversationRetention here; the policy
	// still lets the network win if it were stored.
	{time.Hour, off, 0, time.Hour, "network loopb"},
	{time.Hour, off, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{time.Hour, off, 3 * time.Hour, time.Hour, "network loopb"},
	{time.Hour, conv30m, 0, 30 * time.Minute, "conversation setting"},
	{time.Hour, conv30m, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{time.Hour, conv30m, 3 * time.Hour, 30 * time.Minute, "conversation setting"},
	{time.Hour, conv2h, 0, time.Hour, "network loopb"},
	{time.Hour, conv2h, 10 * time.Minute, 10 * time.Minute, "message timer"},
	{time.Hour, conv2h, 3 * time.Hour, time.Hour, "network loopb"},
}

func TestRetentionPolicyStrictestWins(t *testing.T) {
	legs := []bridge.Leg{legA("room"), legB("chat")}
	for _, tc := range policyCases {
		t.Run(fmt.Sprintf("net=%s/conv=%s/timer=%s", tc.network, tc.setting.name, tc.timer), func(t *testing.T) {
			p := &bridge.RetentionPolicy{Default: serverDefault, Networks: map[bridge.NetworkID]time.Duration{netB: tc.network}}
			got := p.Effective(bridge.RetentionInput{
				Legs:    legs,
				Setting: bridge.ConversationSetting{Keep: tc.setting.keep, Off: tc.setting.off},
			}).Message(tc.timer)
			require.Equal(t, tc.keep, got.Keep)
			require.Equal(t, tc.source, got.Source())
			now := fakeclock.New(time.Time{}).Now()
			if tc.keep == 0 {
				require.True(t, got.Expiry(now).IsZero())
				require.Equal(t, "off", got.String())
			} else {
				require.Equal(t, now.Add(tc.keep), got.Expiry(now))
			}
		})
	}
}

func TestRetentionPolicyLegTimersAndTies(t *testing.T) {
	p := &bridge.RetentionPolicy{Default: time.Hour, Networks: map[bridge.NetworkID]time.Duration{netB: time.Hour}}
	legs := []bridge.Leg{legA("room"), legB("chat")}
	// A tie names the most binding rule: the network, not the default.
	require.Equal(t, "1h0m0s (network loopb)", p.Effective(bridge.RetentionInput{Legs: legs}).String())
	// A WhatsApp-style chat timer on one leg is stricter.
	got := p.Effective(bridge.RetentionInput{Legs: legs, LegTimers: map[bridge.Leg]time.Duration{legA("room"): 5 * time.Minute}})
	require.Equal(t, "chat timer on loopa", got.Source())
	require.Equal(t, 5*time.Minute, got.Keep)
	// Nothing configured: kept, unless the message has a timer.
	var none *bridge.RetentionPolicy
	require.Equal(t, "off", none.Effective(bridge.RetentionInput{Legs: legs}).String())
	require.Equal(t, "7s (message timer)", none.Effective(bridge.RetentionInput{Legs: legs}).Message(7*time.Second).String())
}

// expiresAt reads the deadline of a message's copy on a leg (0: none).
func expiresAt(t testing.TB, h *harness, leg bridge.Leg, remote bridge.RemoteID) int64 {
	t.Helper()
	var v sql.NullInt64
	require.NoError(t, h.db.QueryRow(context.Background(),
		`SELECT expires_at FROM sb_message WHERE network=$1 AND chat_id=$2 AND remote_id=$3`, leg.Network, leg.Chat, remote).Scan(&v))
	return v.Int64
}

// TestRetentionAppliedAtAccept runs the policy table through the router on a
// fake clock: the conversation setting is stored with
// SetConversationRetention, and each copy's expires_at is accept time plus
// the strictest period.
func TestRetentionAppliedAtAccept(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		clock := fakeclock.New(time.Time{})
		for _, network := range []time.Duration{0, time.Hour} {
			h := startHarness(t, dbo, withOptions(func(o *bridge.Options) {
				o.Now = clock.Now
				o.RetentionPolicy = &bridge.RetentionPolicy{Default: serverDefault, Networks: map[bridge.NetworkID]time.Duration{netB: network}}
			}))
			ctx := context.Background()
			for i, tc := range policyCases {
				if tc.network != network {
					continue
				}
				chat := fmt.Sprintf("c%d", i)
				conv := h.conversation(legA(chat), legB(chat))
				err := h.router.SetConversationRetention(ctx, conv, tc.setting.keep, tc.setting.off)
				if tc.setting.off && network > 0 {
					var req *bridge.RetentionRequiredError
					require.ErrorAs(t, err, &req)
					require.ErrorIs(t, err, bridge.ErrRetentionRequired)
					require.Equal(t, netB, req.Network)
					require.Contains(t, err.Error(), "network loopb")
					continue
				}
				require.NoError(t, err)
				if tc.timer == 0 {
					eff, err := h.router.ConversationRetention(ctx, conv)
					require.NoError(t, err)
					require.Equal(t, tc.source, eff.Source(), "case %d", i)
				}
				evt := text(chat, "$"+chat, "hi")
				evt.Timer = tc.timer
				require.NoError(t, h.a.Receive(ctx, evt))
				want := int64(0)
				if tc.keep > 0 {
					want = clock.Now().Add(tc.keep).UnixMilli()
				}
				require.Equal(t, want, expiresAt(t, h, legA(chat), bridge.RemoteID("$"+chat)), "case %d: %+v", i, tc)
			}
			// Each delivered copy carries the same deadline as its source.
			waitQueueEmpty(t, h.router)
			for _, s := range h.b.Sent() {
				src := s.Delivery.Event.SourceID
				require.Equal(t, expiresAt(t, h, legA(string(s.Chat)), src), expiresAt(t, h, legB(string(s.Chat)), s.RemoteID))
			}
			h.stop()
		}
	})
}

func TestSetConversationRetentionErrors(t *testing.T) {
	h := startHarness(t, dbtest.SQLite(t), withOptions(func(o *bridge.Options) {
		o.RetentionPolicy = &bridge.RetentionPolicy{Default: serverDefault}
	}))
	ctx := context.Background()
	conv := h.conversation(legA("r"), legB("c"))
	require.ErrorIs(t, h.router.SetConversationRetention(ctx, "c_nope", time.Minute, false), bridge.ErrUnknownConversation)
	require.ErrorIs(t, h.router.SetConversationRetention(ctx, conv, -time.Second, false), bridge.ErrInvalidEvent)
	require.ErrorIs(t, h.router.SetLegTimer(ctx, legA("nowhere"), time.Minute), bridge.ErrUnknownLeg)

	// off, then back to the defaults, then a chat timer.
	require.NoError(t, h.router.SetConversationRetention(ctx, conv, 0, true))
	eff, err := h.router.ConversationRetention(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, "off", eff.String())
	require.NoError(t, h.router.SetConversationRetention(ctx, conv, 0, false))
	eff, err = h.router.ConversationRetention(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, "24h0m0s (server default)", eff.String())
	require.NoError(t, h.router.SetLegTimer(ctx, legB("c"), 90*time.Second))
	eff, err = h.router.ConversationRetention(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, "1m30s (chat timer on loopb)", eff.String())
	_, err = h.router.ConversationRetention(ctx, "c_nope")
	require.True(t, errors.Is(err, bridge.ErrUnknownConversation))
}

func TestRetentionPolicyAfterRead(t *testing.T) {
	legs := []bridge.Leg{legA("room"), legB("chat")}
	read10m := bridge.ConversationSetting{Keep: 10 * time.Minute, AfterRead: true}
	for _, tc := range []struct {
		name   string
		policy bridge.RetentionPolicy
		timer  time.Duration
		want   string
	}{
		{"after read only", bridge.RetentionPolicy{}, 0, "off; 10m0s after read (conversation setting)"},
		{"network bounds it after send", bridge.RetentionPolicy{Networks: map[bridge.NetworkID]time.Duration{netB: time.Hour}}, 0, "1h0m0s (network loopb); 10m0s after read (conversation setting)"},
		{"after send stricter: read is moot", bridge.RetentionPolicy{Networks: map[bridge.NetworkID]time.Duration{netB: 5 * time.Minute}}, 0, "5m0s (network loopb)"},
		{"message timer stricter", bridge.RetentionPolicy{Default: serverDefault}, time.Minute, "1m0s (message timer)"},
		{"message timer looser", bridge.RetentionPolicy{Default: serverDefault}, time.Hour, "1h0m0s (message timer); 10m0s after read (conversation setting)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.policy.Effective(bridge.RetentionInput{Legs: legs, Setting: read10m}).Message(tc.timer)
			require.Equal(t, tc.want, got.String())
		})
	}
}

// TestAfterReadClockStartsOnRead: in an after-read conversation a message
// is kept until a recipient reads it (the sender's own read does not
// count), then deleted everywhere ReadKeep later.
func TestAfterReadClockStartsOnRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := startHarness(t, dbo, withOptions(func(o *bridge.Options) {
			o.RetentionPolicy = &bridge.RetentionPolicy{}
			o.MetadataRetention = time.Millisecond // unread messages are not metadata
		}))
		conv := h.conversation(legA("room"), legB("chat"))
		ctx := context.Background()
		require.NoError(t, h.router.SetConversationRetentionAfterRead(ctx, conv, 300*time.Millisecond))
		eff, err := h.router.ConversationRetention(ctx, conv)
		require.NoError(t, err)
		require.Equal(t, "off; 300ms after read (conversation setting)", eff.String())
		require.NoError(t, h.a.Receive(ctx, text("room", "$unread", "x")))
		sent := h.b.WaitSent(1, 5*time.Second)
		waitQueueEmpty(t, h.router)
		msg := sent[0].Delivery.Message
		require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindReadReceipt, Source: legA("room"), SourceID: "own-read", Target: "$unread"}))
		time.Sleep(700 * time.Millisecond)
		_, err = h.router.ExpireNow(ctx)
		require.NoError(t, err)
		m, _ := rowsOf(t, h, msg)
		require.Equal(t, 2, m, "unread: kept")

		read := time.Now()
		require.NoError(t, h.b.Receive(ctx, &bridge.Event{Kind: bridge.KindReadReceipt, Source: legB("chat"), SourceID: "read-1", Target: sent[0].RemoteID}))
		del := waitDelete(t, h.b, sent[0].RemoteID, 3*time.Second)
		waitDelete(t, h.a, "$unread", 3*time.Second)
		require.GreaterOrEqual(t, del.At.Sub(read), 250*time.Millisecond)
		require.Eventually(t, func() bool {
			m, q := rowsOf(t, h, msg)
			return m == 0 && q == 0
		}, 2*time.Second, 10*time.Millisecond)
		var timers int
		require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM sb_read_timer`).Scan(&timers))
		require.Zero(t, timers)
	})
}
