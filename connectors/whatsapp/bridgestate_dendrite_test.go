package whatsapp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
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
)

// Against a real homeserver (issue 14): a portal carries both MSC2346
// bridge-info state events, keyed and filled without a digit of the
// contact's number; the user's own message from their phone appears as the
// "You (from WhatsApp)" ghost until they send `double-puppet on`, then from
// their own Matrix account (sent with the appservice's token, through the
// registration's non-exclusive namespace, which Dendrite accepts); and
// what they send from Matrix is answered with com.beeper.message_send_status
// events: SUCCESS when WhatsApp took it, FAIL_PERMANENT when it refused.
//
// In encrypted portals (the second run) the same holds of what the bot
// encrypts: the ghost's and the double puppet's messages and the status
// events are m.room.encrypted (relations stay outside, as Megolm keeps
// them), the double puppet's sent as alice and marked as the bridge's.
func TestBridgeStateWithDendrite(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			if encrypted && !matrix.EncryptionCompiled() {
				t.Skip("encryption is not compiled in (build without the goolm tag)")
			}
			testBridgeStateWithDendrite(t, encrypted)
		})
	}
}

func testBridgeStateWithDendrite(t *testing.T, encrypted bool) {
	h := startDendriteBridge(t, dendriteBridgeOptions{
		Encrypted: encrypted,
		Config: func(cfg *config.Config) {
			cfg.Appservice.DoublePuppet = true
			require.True(t, cfg.Appservice.MessageStatusEvents, "status events are on by default")
		},
		// The namespace names the domain, which is known only now.
		RewriteRegistration: true,
		Router: func(o *bridge.Options) {
			o.MaxAttempts, o.RetryBase, o.RetryMax = 2, 10*time.Millisecond, 50*time.Millisecond
		},
		Wire: func(h *dendriteBridge) {
			h.mx.SetLegLister(h.router)
			require.NoError(t, h.cmds.Register(matrix.DoublePuppetCommand(h.mx)))
		},
	})
	ctx, cfg, mx, wa, sessions, logs, alice, do := h.ctx, h.cfg, h.mx, h.wa, h.sessions, h.logs, h.alice, h.do
	bot := h.bot()
	roomEvents := func(room string) []mxEvent {
		var resp struct {
			Chunk []mxEvent `json:"chunk"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
		return resp.Chunk
	}
	waitEvent := func(room, what string, fn func(mxEvent) bool) mxEvent {
		t.Helper()
		var got mxEvent
		require.Eventually(t, func() bool {
			for _, e := range roomEvents(room) {
				if fn(e) {
					got = e
					return true
				}
			}
			return false
		}, 20*time.Second, 100*time.Millisecond, what)
		return got
	}
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/createRoom", map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	dm := created.RoomID
	require.Eventually(t, func() bool {
		var m struct {
			Joined map[string]any `json:"joined"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(dm)+"/joined_members", nil, &m)
		_, ok := m.Joined[bot]
		return ok
	}, 20*time.Second, 100*time.Millisecond, "bot joins the DM")
	txn := 0
	send := func(room, body string) string {
		txn++
		var resp struct {
			EventID string `json:"event_id"`
		}
		require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(room)+"/send/m.room.message/t"+strconv.Itoa(txn),
			map[string]any{"msgtype": "m.text", "body": body}, &resp))
		return resp.EventID
	}

	// Alice logs in to WhatsApp; a contact writes; she joins the portal.
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
	require.True(t, g.dispatch(message(contactJID, contactJID, "C1", text("hello from the contact"))))
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
	// isMsg matches a bridged message: by its body, or in an encrypted
	// portal as an encrypted event from sender (any sender when "").
	isMsg := func(body, sender string) func(mxEvent) bool {
		return func(e mxEvent) bool {
			if encrypted {
				return e.Type == "m.room.encrypted" && (sender == "" || e.Sender == sender) && e.Sender != bot
			}
			return str(e.Content["body"]) == body
		}
	}
	contactMsg := waitEvent(portal, "the contact's message", isMsg("hello from the contact", ""))

	// Bridge info: both event types, one per network, no number.
	type stateEvent struct {
		Type     string         `json:"type"`
		StateKey string         `json:"state_key"`
		Content  map[string]any `json:"content"`
	}
	var infos map[string]stateEvent
	require.Eventually(t, func() bool {
		var state []stateEvent
		do(http.MethodGet, "/rooms/"+url.PathEscape(portal)+"/state", nil, &state)
		infos = map[string]stateEvent{}
		for _, s := range state {
			if s.Type == "m.bridge" || s.Type == "uk.half-shot.bridge" {
				infos[s.Type] = s
			}
		}
		return len(infos) == 2
	}, 20*time.Second, 100*time.Millisecond, "the portal carries m.bridge and uk.half-shot.bridge")
	for typ, s := range infos {
		require.True(t, strings.HasPrefix(s.StateKey, cfg.Appservice.ID+"://whatsapp/"), "%s state key %q", typ, s.StateKey)
		require.Equal(t, infos["m.bridge"].StateKey, s.StateKey)
		require.Equal(t, bot, s.Content["bridgebot"], typ)
		protocol, _ := s.Content["protocol"].(map[string]any)
		require.Equal(t, "whatsapp", protocol["id"], typ)
		require.Equal(t, "WhatsApp", protocol["displayname"], typ)
		channel, _ := s.Content["channel"].(map[string]any)
		require.NotEmpty(t, channel["id"], typ)
		requireNoNumbers(t, s.StateKey+" "+mustJSON(t, s.Content), typ)
	}
	require.Equal(t, infos["m.bridge"].Content, infos["uk.half-shot.bridge"].Content)

	// Her own message from the phone, before opting in: the ghost.
	fromMe := func(msgID, body string) *events.Message {
		m := message(contactJID, own.ToNonAD(), msgID, text(body))
		m.Info.IsFromMe = true
		return m
	}
	require.True(t, g.dispatch(fromMe("M1", "from my phone, not opted in")))
	ghostMsg := waitEvent(portal, "own message as the ghost", func(e mxEvent) bool {
		return isMsg("from my phone, not opted in", "")(e) && e.Sender != contactMsg.Sender
	})
	require.True(t, strings.HasPrefix(ghostMsg.Sender, "@"+cfg.Appservice.GhostPrefix), ghostMsg.Sender)
	require.NotEqual(t, contactMsg.Sender, ghostMsg.Sender)

	// Opted in: her own account.
	on := send(dm, "double-puppet on")
	waitEvent(dm, "opt-in answer", func(e mxEvent) bool {
		return e.Sender == bot && strings.Contains(str(e.Content["body"]), "Double puppeting is on")
	})
	require.NotEmpty(t, on)
	require.True(t, g.dispatch(fromMe("M2", "from my phone, opted in")))
	puppetMsg := waitEvent(portal, "own message as alice", isMsg("from my phone, opted in", alice))
	require.Equal(t, alice, puppetMsg.Sender)
	require.Equal(t, cfg.Appservice.ID, puppetMsg.Content["fi.mau.double_puppet_source"], "marked as sent by the bridge")
	if encrypted {
		require.Equal(t, "m.room.encrypted", puppetMsg.Type)
	}
	// Its echo is not bridged back to WhatsApp.
	sentBefore := len(g.sentMessages())

	// Send status: delivered, then refused by WhatsApp.
	ok := send(portal, "from matrix, delivered")
	status := func(evtID, want string) mxEvent {
		t.Cleanup(func() {
			if t.Failed() {
				for _, e := range roomEvents(portal) {
					t.Logf("DEBUG %s %s %s %s", e.EventID, e.Type, e.Sender, mustJSON(t, e.Content))
				}
			}
		})
		return waitEvent(portal, want+" status for "+evtID, func(e mxEvent) bool {
			rel, _ := e.Content["m.relates_to"].(map[string]any)
			if encrypted {
				return e.Type == "m.room.encrypted" && e.Sender == bot && rel["event_id"] == evtID && rel["rel_type"] == "m.reference"
			}
			return e.Type == "com.beeper.message_send_status" && e.Sender == bot && rel["event_id"] == evtID &&
				rel["rel_type"] == "m.reference" && e.Content["status"] == want
		})
	}
	st := status(ok, "SUCCESS")
	if !encrypted {
		require.Equal(t, "whatsapp", st.Content["network"])
	}
	require.Eventually(t, func() bool { return len(g.sentMessages()) == sentBefore+1 }, 10*time.Second, 50*time.Millisecond)
	g.mu.Lock()
	g.sendErr = whatsmeow.ErrIQForbidden
	g.mu.Unlock()
	bad := send(portal, "from matrix, refused")
	st = status(bad, "FAIL_PERMANENT")
	if !encrypted {
		require.Equal(t, "whatsapp", st.Content["network"])
		require.NotEmpty(t, st.Content["message"])
		waitEvent(portal, "failure notice", func(e mxEvent) bool {
			return e.Sender == bot && strings.Contains(str(e.Content["body"]), "was not delivered")
		})
	} else {
		require.Equal(t, "m.room.encrypted", st.Type)
	}
	require.Len(t, g.sentMessages(), sentBefore+1, "the double puppet's echo was not sent back to WhatsApp")
	requireNoNumbers(t, logs.String(), "logs")
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}
