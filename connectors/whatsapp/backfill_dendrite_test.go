package whatsapp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waHistorySync"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// Against a real homeserver and the real Matrix connector: WhatsApp's
// history sync after a login lands in the portal as events whose
// origin_server_ts is WhatsApp's time (the appservice ts override), in
// order in /messages, after what the portal already showed; and `!sb
// backfill` answers in the portal.
func TestHistoryWithDendrite(t *testing.T) {
	h := startDendriteBridge(t, dendriteBridgeOptions{
		Router: func(o *bridge.Options) { o.RetentionPolicy = &bridge.RetentionPolicy{Default: 30 * 24 * time.Hour} },
		Wire:   func(h *dendriteBridge) { require.NoError(t, h.cmds.Register(BackfillCommand(h.wa, h.router))) },
	})
	ctx, cfg, mx, wa, sessions, logs, alice, do := h.ctx, h.cfg, h.mx, h.wa, h.sessions, h.logs, h.alice, h.do
	type tsEvent struct {
		EventID string         `json:"event_id"`
		Sender  string         `json:"sender"`
		TS      int64          `json:"origin_server_ts"`
		Content map[string]any `json:"content"`
	}
	// timeline is the room's messages in timeline order (oldest first).
	timeline := func(room string) []tsEvent {
		var resp struct {
			Chunk []tsEvent `json:"chunk"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
		out := make([]tsEvent, 0, len(resp.Chunk))
		for i := len(resp.Chunk) - 1; i >= 0; i-- {
			if _, ok := resp.Chunk[i].Content["body"]; ok {
				out = append(out, resp.Chunk[i])
			}
		}
		return out
	}

	// alice logs in (the answer goes to a DM with the bot).
	bot := h.bot()
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/createRoom", map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	own := types.NewADJID("14155550101", 0, 3)
	g := newFakeClient(own)
	sessions.mu.Lock()
	sessions.next = []*fakeClient{g}
	sessions.mu.Unlock()
	require.Contains(t, wa.LoginCommand(ctx, &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser,
		Room: bridge.ChatID(created.RoomID), Name: "login", Args: []string{"whatsapp"}, Reply: matrix.StepReplier(mx, id.RoomID(created.RoomID))}), "Scan")
	require.True(t, g.waitFor(10*time.Second, func() bool { return g.qr != nil }))
	g.dispatch(&events.PairSuccess{ID: own})
	g.qr <- whatsmeow.QRChannelSuccess
	require.Eventually(t, func() bool {
		for _, e := range timeline(created.RoomID) {
			if strings.Contains(str(e.Content["body"]), "now logged in to WhatsApp") {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "logged in")

	// A contact writes live: the portal opens.
	live := message(contactJID, contactJID, "L1", text("live hello"))
	live.Info.Timestamp = time.Now().Truncate(time.Second).Add(-10 * time.Minute)
	require.True(t, g.dispatch(live))
	var invites struct {
		Rooms struct {
			Invite map[string]any `json:"invite"`
		} `json:"rooms"`
	}
	require.Eventually(t, func() bool {
		do(http.MethodGet, "/sync?timeout=0", nil, &invites)
		return len(invites.Rooms.Invite) > 0
	}, 20*time.Second, 100*time.Millisecond, "alice is invited to a portal")
	var portal string
	for room := range invites.Rooms.Invite {
		portal = room
	}
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/join/"+url.PathEscape(portal), map[string]any{}, nil))

	// Then the phone's history sync: three earlier messages, one from
	// alice's phone, and one older than the 30-day retention.
	now := time.Now().Truncate(time.Second)
	h1 := histMsg{id: "H1", body: "history one", at: now.Add(-3 * time.Hour)}
	h2 := histMsg{id: "H2", body: "history two", at: now.Add(-2 * time.Hour), fromMe: true}
	h3 := histMsg{id: "H3", body: "history three", at: now.Add(-time.Hour)}
	old := histMsg{id: "H0", body: "history too old", at: now.Add(-40 * 24 * time.Hour)}
	require.True(t, g.dispatch(historyNotification(t, own, waHistorySync.HistorySync_INITIAL_BOOTSTRAP, historyConv(contactJID, "", h3, h2, h1, old))))

	var got []tsEvent
	require.Eventually(t, func() bool {
		got = timeline(portal)
		return len(got) >= 4
	}, 20*time.Second, 100*time.Millisecond, "the history reaches the portal")
	bodies := make([]string, len(got))
	for i, e := range got {
		bodies[i] = str(e.Content["body"])
	}
	require.Equal(t, []string{"live hello", h1.body, h2.body, h3.body}, bodies, "history in order after what the portal showed; nothing past retention")
	require.Equal(t, live.Info.Timestamp.UnixMilli(), got[0].TS)
	for i, m := range []histMsg{h1, h2, h3} {
		require.Equal(t, m.at.UnixMilli(), got[i+1].TS, "%s carries WhatsApp's time as origin_server_ts", m.id)
		require.True(t, strings.HasPrefix(got[i+1].Sender, "@"+cfg.Appservice.GhostPrefix))
		requireNoNumbers(t, got[i+1].Sender, "ghost ID")
	}

	// `!sb backfill 5` in the portal asks alice's phone.
	require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(portal)+"/send/m.room.message/bf1", map[string]any{"msgtype": "m.text", "body": "!sb backfill 5"}, nil))
	require.Eventually(t, func() bool {
		for _, e := range timeline(portal) {
			if e.Sender == bot && strings.Contains(str(e.Content["body"]), "Asked your phone for up to 5") {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "the backfill answer")
	requireNoNumbers(t, logs.String(), "logs")
	for _, m := range []histMsg{h1, h2, h3, old} {
		require.NotContains(t, logs.String(), m.body)
	}
}
