package whatsapp

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

func token(t testing.TB) string {
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

type mxEvent struct {
	EventID string         `json:"event_id"`
	Type    string         `json:"type"`
	Sender  string         `json:"sender"`
	Content map[string]any `json:"content"`
}

// Against a real homeserver and the real Matrix connector: `login
// whatsapp` in a DM with the bot shows QR codes as images, each new one
// redacting the last, and says when the login timed out; a WhatsApp
// contact then writing to a logged-in user gets a portal whose room name,
// ghost ID and ghost name hold no phone number.
func TestWithDendrite(t *testing.T) {
	h := startDendriteBridge(t, dendriteBridgeOptions{Config: func(cfg *config.Config) {
		cfg.WhatsApp.LoginTimeout = config.Duration(2 * time.Second)
	}})
	ctx, cfg, mx, wa, sessions, logs, alice, do := h.ctx, h.cfg, h.mx, h.wa, h.sessions, h.logs, h.alice, h.do
	bot := h.bot()
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/createRoom", map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	dm := created.RoomID
	roomEvents := func(room string) []mxEvent {
		var resp struct {
			Chunk []mxEvent `json:"chunk"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
		return resp.Chunk
	}
	find := func(room string, fn func(mxEvent) bool) (mxEvent, bool) {
		for _, e := range roomEvents(room) {
			if fn(e) {
				return e, true
			}
		}
		return mxEvent{}, false
	}
	waitEvent := func(room, what string, fn func(mxEvent) bool) mxEvent {
		t.Helper()
		var got mxEvent
		require.Eventually(t, func() bool {
			var ok bool
			got, ok = find(room, fn)
			return ok
		}, 20*time.Second, 100*time.Millisecond, what)
		return got
	}
	require.Eventually(t, func() bool {
		var m struct {
			Joined map[string]any `json:"joined"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(dm)+"/joined_members", nil, &m)
		_, ok := m.Joined[bot]
		return ok
	}, 20*time.Second, 100*time.Millisecond, "bot joins the DM")

	// QR login that times out.
	f := newFakeClient(types.EmptyJID)
	sessions.mu.Lock()
	sessions.next = []*fakeClient{f}
	sessions.mu.Unlock()
	require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(dm)+"/send/m.room.message/login1", map[string]any{"msgtype": "m.text", "body": "login whatsapp"}, nil))
	waitEvent(dm, "login answer", func(e mxEvent) bool {
		return e.Sender == bot && strings.Contains(str(e.Content["body"]), "Scan the QR code")
	})
	require.True(t, f.waitFor(10*time.Second, func() bool { return f.qr != nil }))
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@first-code"}
	first := waitEvent(dm, "first QR image", func(e mxEvent) bool { return e.Sender == bot && e.Content["msgtype"] == "m.image" })
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@second-code"}
	waitEvent(dm, "second QR image", func(e mxEvent) bool {
		return e.Sender == bot && e.Content["msgtype"] == "m.image" && e.EventID != first.EventID
	})
	waitEvent(dm, "first QR redacted", func(e mxEvent) bool { return e.EventID == first.EventID && len(e.Content) == 0 })
	waitEvent(dm, "timeout notice", func(e mxEvent) bool { return e.Sender == bot && strings.Contains(str(e.Content["body"]), "timed out") })
	require.Eventually(t, func() bool {
		for _, e := range roomEvents(dm) {
			if e.Content["msgtype"] == "m.image" {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "every QR image is redacted after the timeout")

	// A successful login, then a contact whose push name is a number writes.
	own := types.NewADJID("14155550101", 0, 3)
	g := newFakeClient(own)
	sessions.mu.Lock()
	sessions.next = []*fakeClient{g}
	sessions.mu.Unlock()
	require.Contains(t, wa.LoginCommand(ctx, &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser,
		Room: bridge.ChatID(dm), Name: "login", Args: []string{"whatsapp"}, Reply: matrix.StepReplier(mx, id.RoomID(dm))}), "Scan")
	require.True(t, g.waitFor(10*time.Second, func() bool { return g.qr != nil }))
	g.dispatch(&events.PairSuccess{ID: own})
	g.qr <- whatsmeow.QRChannelSuccess
	waitEvent(dm, "logged in", func(e mxEvent) bool { return strings.Contains(str(e.Content["body"]), "now logged in to WhatsApp") })
	msg := message(contactJID, contactJID, "D1", text("hello from whatsapp"))
	msg.Info.PushName = "+1 415 555 0177"
	require.True(t, g.dispatch(msg))

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
	got := waitEvent(portal, "the message", func(e mxEvent) bool { return str(e.Content["body"]) == "hello from whatsapp" })
	require.True(t, strings.HasPrefix(got.Sender, "@"+cfg.Appservice.GhostPrefix))
	requireNoNumbers(t, got.Sender, "ghost ID")
	var name struct {
		Name string `json:"name"`
	}
	do(http.MethodGet, "/rooms/"+url.PathEscape(portal)+"/state/m.room.name/", nil, &name)
	requireNoNumbers(t, name.Name, "room name")
	require.NotEmpty(t, name.Name)
	var profile struct {
		DisplayName string `json:"displayname"`
	}
	do(http.MethodGet, "/profile/"+url.PathEscape(got.Sender), nil, &profile)
	requireNoNumbers(t, profile.DisplayName, "ghost name")
	require.False(t, phone.Contains(profile.DisplayName))
	requireNoNumbers(t, logs.String(), "logs")
}

func str(v any) string { s, _ := v.(string); return s }
