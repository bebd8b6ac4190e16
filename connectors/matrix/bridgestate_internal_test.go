package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

const bsNumber = "14155550177"

// Bridge info describes every network but Matrix, one entry per leg, with
// keys and content free of the chat's number; the same chat always gets
// the same key, another chat another; a network leaving changes the hash.
func TestBridgeInfoEntries(t *testing.T) {
	c, _ := leaseConnector(t, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, time.Minute)
	matrixLeg := bridge.Leg{Network: bridge.NetworkMatrix, Chat: "!portal:localhost"}
	wa := bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: bridge.ChatID(bsNumber + "@s.whatsapp.net")}
	sms := bridge.Leg{Network: bridge.NetworkSMS, Chat: bridge.ChatID("+" + bsNumber + ">+14155550100")}
	for _, tc := range []struct {
		name     string
		legs     []bridge.Leg
		networks []string
	}{
		{"matrix only", []bridge.Leg{matrixLeg}, nil},
		{"whatsapp", []bridge.Leg{matrixLeg, wa}, []string{"whatsapp"}},
		{"whatsapp and sms", []bridge.Leg{sms, matrixLeg, wa}, []string{"sms", "whatsapp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries := c.bridgeInfoEntries(tc.legs, "Carol +1 415 555 0177", true)
			var networks []string
			for _, e := range entries {
				networks = append(networks, e.content.Protocol.ID)
				require.True(t, strings.HasPrefix(e.key, "switchboard://"+e.content.Protocol.ID+"/"), e.key)
				data, err := json.Marshal(e.content)
				require.NoError(t, err)
				for _, s := range []string{e.key, string(data)} {
					require.NotContains(t, s, bsNumber)
					require.NotContains(t, s, "555")
				}
				require.Equal(t, c.bot, e.content.BridgeBot)
				require.Equal(t, "dm", e.content.BeeperRoomType)
			}
			require.Equal(t, tc.networks, networks)
		})
	}
	one := c.bridgeInfoEntries([]bridge.Leg{matrixLeg, wa}, "Carol", false)
	again := c.bridgeInfoEntries([]bridge.Leg{wa, matrixLeg}, "Carol", false)
	other := c.bridgeInfoEntries([]bridge.Leg{matrixLeg, {Network: bridge.NetworkWhatsApp, Chat: "14155550178@s.whatsapp.net"}}, "Carol", false)
	require.Equal(t, one[0].key, again[0].key)
	require.NotEqual(t, one[0].key, other[0].key)
	both := c.bridgeInfoEntries([]bridge.Leg{matrixLeg, wa, sms}, "Carol", false)
	require.NotEqual(t, bridgeInfoHash(one), bridgeInfoHash(both))
	require.Equal(t, bridgeInfoHash(one), bridgeInfoHash(again))
}

// Each outcome of an event sent from Matrix maps to the status a client
// shows; typing and receipts, and reports about no Matrix event, to none.
func TestMessageStatusContent(t *testing.T) {
	wa := bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: "chat"}
	for _, tc := range []struct {
		name   string
		rep    bridge.StatusReport
		status event.MessageStatus
		reason event.MessageStatusReason
	}{
		{"delivered", bridge.StatusReport{Kind: bridge.KindMessage, SourceID: "$a", Destination: wa, State: bridge.StateDelivered}, event.MessageStatusSuccess, ""},
		{"retrying", bridge.StatusReport{Kind: bridge.KindMessage, SourceID: "$a", Destination: wa, State: bridge.StateRetrying, Err: errors.New("timeout")}, event.MessageStatusRetriable, event.MessageStatusNetworkError},
		{"failed", bridge.StatusReport{Kind: bridge.KindEdit, SourceID: "$a", Destination: wa, State: bridge.StateFailed, Err: errors.New("to +" + bsNumber + ": refused")}, event.MessageStatusFail, event.MessageStatusNetworkError},
		{"unsupported", bridge.StatusReport{Kind: bridge.KindReaction, SourceID: "$a", Destination: wa, State: bridge.StateFailed, Err: bridge.ErrNotSupported}, event.MessageStatusFail, event.MessageStatusUnsupported},
		{"typing", bridge.StatusReport{Kind: bridge.KindTyping, SourceID: "$a", Destination: wa, State: bridge.StateFailed}, "", ""},
		{"receipt", bridge.StatusReport{Kind: bridge.KindReadReceipt, SourceID: "$a", Destination: wa, State: bridge.StateDelivered}, "", ""},
		{"not an event", bridge.StatusReport{Kind: bridge.KindMessage, SourceID: "SM123", Destination: wa, State: bridge.StateDelivered}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := messageStatusContent(&tc.rep)
			if tc.status == "" {
				require.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			require.Equal(t, tc.status, got.Status)
			require.Equal(t, tc.reason, got.Reason)
			require.Equal(t, event.RelReference, got.RelatesTo.Type)
			require.Equal(t, id.EventID("$a"), got.RelatesTo.EventID)
			require.Equal(t, "whatsapp", got.Network)
			data, _ := json.Marshal(got)
			require.NotContains(t, string(data), bsNumber)
		})
	}
}

// The echo of what a double puppet sent is recognized from its marker,
// parsed or not; the user's own messages are not.
func TestIsPuppetEcho(t *testing.T) {
	c, _ := leaseConnector(t, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, time.Minute)
	for _, tc := range []struct {
		name    string
		content event.Content
		want    bool
	}{
		{"marked, parsed", event.Content{Raw: map[string]any{"fi.mau.double_puppet_source": "switchboard", "body": "x"}}, true},
		{"marked, raw", event.Content{VeryRaw: json.RawMessage(`{"fi.mau.double_puppet_source":"switchboard","algorithm":"m.megolm.v1.aes-sha2"}`)}, true},
		{"another bridge's marker", event.Content{VeryRaw: json.RawMessage(`{"fi.mau.double_puppet_source":"mautrix-whatsapp"}`)}, false},
		{"plain", event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, c.isPuppetEcho(&event.Event{Sender: "@alice:localhost", Content: tc.content}))
		})
	}
}

// The opt-in is kept in the database (SQLite, and PostgreSQL when
// SWITCHBOARD_TEST_POSTGRES is set), per user, and only offered to users
// of the bridge's homeserver when appservice.double_puppet is on.
func TestDoublePuppetOptIn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		c, _ := leaseConnector(t, dbo, time.Minute)
		ctx := context.Background()
		alice := id.UserID("@alice:localhost")
		require.False(t, c.DoublePuppetAvailable(alice), "off unless the config allows it")
		c.cfg.Appservice.DoublePuppet = true
		require.True(t, c.DoublePuppetAvailable(alice))
		require.False(t, c.DoublePuppetAvailable("@bob:elsewhere"))
		require.False(t, c.DoublePuppetAvailable(c.bot))
		require.False(t, c.DoublePuppetAvailable(c.GhostUserID(bridge.NetworkWhatsApp, "x")))
		on, err := c.DoublePuppetEnabled(ctx, alice)
		require.NoError(t, err)
		require.False(t, on)
		require.NoError(t, c.SetDoublePuppet(ctx, alice, true))
		require.NoError(t, c.SetDoublePuppet(ctx, alice, true), "twice is fine")
		c.puppets.optIn = nil // read from the database
		on, err = c.DoublePuppetEnabled(ctx, alice)
		require.NoError(t, err)
		require.True(t, on)
		on, err = c.DoublePuppetEnabled(ctx, "@carol:localhost")
		require.NoError(t, err)
		require.False(t, on)
		require.NoError(t, c.SetDoublePuppet(ctx, alice, false))
		c.puppets.optIn = nil
		on, err = c.DoublePuppetEnabled(ctx, alice)
		require.NoError(t, err)
		require.False(t, on)
		// No puppet without Self, nor for someone who did not opt in.
		require.Nil(t, c.puppetIntent(ctx, "!r:localhost", bridge.Sender{ID: "x"}))
		require.Nil(t, c.puppetIntent(ctx, "!r:localhost", bridge.Sender{ID: "x", Self: string(alice)}))
	})
}
