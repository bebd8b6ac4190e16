package whatsapp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// richHS is a Dendrite homeserver with the Matrix and WhatsApp connectors
// (fake whatsmeow), Alice logged in to WhatsApp and joined to the portal
// of a contact's chat.
type richHS struct {
	t         *testing.T
	ctx       context.Context
	cfg       *config.Config
	router    *bridge.Router
	g         *fakeClient
	own       types.JID
	portal    string
	first     string // the first message's event ID
	logs      *testenv.SyncBuffer
	dbPath    string
	do        func(method, path string, body, out any) int
	waitEvent func(room, what string, fn func(mxEvent) bool) mxEvent
	send      func(typ, txn string, content map[string]any) string
}

func startRichHS(t *testing.T, encrypted bool) *richHS {
	h := startDendriteBridge(t, dendriteBridgeOptions{Encrypted: encrypted})
	ctx, cfg, r, mx, wa, sessions, logs, dbPath, alice, do := h.ctx, h.cfg, h.router, h.mx, h.wa, h.sessions, h.logs, h.dbPath, h.alice, h.do
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
		if !assert.Eventually(t, func() bool {
			for _, e := range roomEvents(room) {
				if fn(e) {
					got = e
					return true
				}
			}
			return false
		}, 20*time.Second, 100*time.Millisecond, what) {
			for _, e := range roomEvents(room) {
				t.Logf("in the room: %s from %s: %v", e.Type, e.Sender, e.Content)
			}
			t.FailNow()
		}
		return got
	}

	// Alice logs in her WhatsApp; a contact writes; she joins the portal.
	own := types.NewADJID("14155550101", 0, 3)
	g := newFakeClient(own)
	sessions.mu.Lock()
	sessions.next = []*fakeClient{g}
	sessions.mu.Unlock()
	bot := h.bot()
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
	require.Contains(t, wa.LoginCommand(ctx, &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser,
		Room: bridge.ChatID(dm), Name: "login", Args: []string{"whatsapp"}, Reply: matrix.StepReplier(mx, id.RoomID(dm))}), "Scan")
	require.True(t, g.waitFor(10*time.Second, func() bool { return g.qr != nil }))
	g.dispatch(&events.PairSuccess{ID: own})
	g.qr <- whatsmeow.QRChannelSuccess
	waitEvent(dm, "logged in", func(e mxEvent) bool { return strings.Contains(str(e.Content["body"]), "now logged in to WhatsApp") })
	require.True(t, g.dispatch(message(contactJID, contactJID, "R0", text("hello"))))
	// The portal is the invite that is not a space.
	var portal string
	require.Eventually(t, func() bool {
		var invites struct {
			Rooms struct {
				Invite map[string]struct {
					State struct {
						Events []mxEvent `json:"events"`
					} `json:"invite_state"`
				} `json:"invite"`
			} `json:"rooms"`
		}
		do(http.MethodGet, "/sync?timeout=0", nil, &invites)
		for room, inv := range invites.Rooms.Invite {
			space := false
			for _, e := range inv.State.Events {
				space = space || (e.Type == "m.room.create" && e.Content["type"] == "m.space")
			}
			if !space {
				portal = room
			}
		}
		return portal != ""
	}, 20*time.Second, 100*time.Millisecond, "alice is invited to a portal")
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/join/"+url.PathEscape(portal), map[string]any{}, nil))
	first := waitEvent(portal, "the first message", func(e mxEvent) bool {
		return str(e.Content["body"]) == "hello" || (encrypted && e.Type == "m.room.encrypted")
	})
	send := func(typ, txn string, content map[string]any) string {
		t.Helper()
		var resp struct {
			EventID string `json:"event_id"`
		}
		require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(portal)+"/send/"+typ+"/"+txn, content, &resp))
		return resp.EventID
	}

	return &richHS{t: t, ctx: ctx, cfg: cfg, router: r, g: g, own: own, portal: portal, first: first.EventID, logs: logs, dbPath: dbPath, do: do, waitEvent: waitEvent, send: send}
}

// Against a real homeserver and the real Matrix connector: a WhatsApp
// poll, a contact's vote in it, a location, a live location, a voice note
// with its waveform and a sticker land in the portal as the events
// Element shows (MSC3381 poll start and response, m.location with a geo
// URI, m.audio with the MSC3245 voice marker and MSC1767 duration and
// waveform, m.sticker); Alice's poll responses (in the WhatsApp poll and
// in a poll of her own with her client's answer IDs) become WhatsApp
// votes for the right options, and her m.location a WhatsApp location.
// No option text or number is in the bridge's database or logs.
func TestRichContentWithDendrite(t *testing.T) {
	h := startRichHS(t, false)
	ctx, cfg, g, own, portal, logs, waitEvent, send := h.ctx, h.cfg, h.g, h.own, h.portal, h.logs, h.waitEvent, h.send
	r, dbPath := h.router, h.dbPath
	// WhatsApp poll → MSC3381 poll start from the contact's ghost.
	require.True(t, g.dispatch(message(contactJID, contactJID, "RPOLL", &waE2E.Message{PollCreationMessageV3: &waE2E.PollCreationMessage{
		Name: proto.String("Lunch where?"), SelectableOptionsCount: proto.Uint32(1),
		Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}, {OptionName: proto.String("Tacos")}},
	}})))
	poll := waitEvent(portal, "poll start", func(e mxEvent) bool { return e.Type == "org.matrix.msc3381.poll.start" })
	ghost := poll.Sender
	require.True(t, strings.HasPrefix(ghost, "@"+cfg.Appservice.GhostPrefix))
	start, _ := poll.Content["org.matrix.msc3381.poll.start"].(map[string]any)
	require.NotNil(t, start)
	require.Equal(t, "Lunch where?", str(start["question"].(map[string]any)["org.matrix.msc1767.text"]))
	require.EqualValues(t, 1, start["max_selections"])
	answers, _ := start["answers"].([]any)
	require.Len(t, answers, 3)
	answerID := func(i int) string { return str(answers[i].(map[string]any)["id"]) }
	require.Equal(t, "Sushi", str(answers[1].(map[string]any)["org.matrix.msc1767.text"]))
	require.Contains(t, str(poll.Content["org.matrix.msc1767.text"]), "2. Sushi", "a fallback for clients without polls")

	// The contact's vote → a poll response from their ghost.
	require.True(t, g.dispatch(message(contactJID, contactJID, "RVOTE", contactVote(g, "RPOLL", "Sushi"))))
	vote := waitEvent(portal, "poll response", func(e mxEvent) bool { return e.Type == "org.matrix.msc3381.poll.response" })
	require.Equal(t, ghost, vote.Sender)
	require.Equal(t, map[string]any{"rel_type": "m.reference", "event_id": poll.EventID}, vote.Content["m.relates_to"])
	require.Equal(t, []any{answerID(1)}, vote.Content["org.matrix.msc3381.poll.response"].(map[string]any)["answers"])

	// Locations.
	require.True(t, g.dispatch(message(contactJID, contactJID, "RLOC", &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
		DegreesLatitude: proto.Float64(37.7955), DegreesLongitude: proto.Float64(-122.3937), Name: proto.String("Ferry Building")}})))
	loc := waitEvent(portal, "location", func(e mxEvent) bool {
		return e.Content["msgtype"] == "m.location" && !strings.Contains(str(e.Content["body"]), "Live")
	})
	require.Equal(t, "m.room.message", loc.Type)
	require.Equal(t, "geo:37.795500,-122.393700", loc.Content["geo_uri"])
	require.Contains(t, str(loc.Content["body"]), "Ferry Building")
	require.True(t, g.dispatch(message(contactJID, contactJID, "RLIVE", &waE2E.Message{LiveLocationMessage: &waE2E.LiveLocationMessage{
		DegreesLatitude: proto.Float64(51.5), DegreesLongitude: proto.Float64(-0.12)}})))
	live := waitEvent(portal, "live location", func(e mxEvent) bool {
		return e.Content["msgtype"] == "m.location" && strings.Contains(str(e.Content["body"]), "Live")
	})
	require.Equal(t, "geo:51.500000,-0.120000", live.Content["geo_uri"])
	require.Contains(t, str(live.Content["body"]), "last known position")

	// A voice note with its waveform.
	wave := make([]byte, 64)
	for i := range wave {
		wave[i] = byte(i * 100 / 63)
	}
	g.media["/v/voice"] = oggOpus
	require.True(t, g.dispatch(message(contactJID, contactJID, "RVOICE", &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
		PTT: proto.Bool(true), Seconds: proto.Uint32(4), Waveform: wave, Mimetype: proto.String("audio/ogg; codecs=opus"),
		DirectPath: proto.String("/v/voice"), MediaKey: []byte("k"), FileLength: proto.Uint64(uint64(len(oggOpus)))}})))
	voice := waitEvent(portal, "voice message", func(e mxEvent) bool { return e.Content["msgtype"] == "m.audio" })
	require.Contains(t, voice.Content, "org.matrix.msc3245.voice")
	audio, _ := voice.Content["org.matrix.msc1767.audio"].(map[string]any)
	require.NotNil(t, audio)
	require.EqualValues(t, 4000, audio["duration"])
	samples, _ := audio["waveform"].([]any)
	require.Len(t, samples, 64)
	require.EqualValues(t, 0, samples[0])
	require.EqualValues(t, 1024, samples[63])
	require.True(t, strings.HasPrefix(str(voice.Content["url"]), "mxc://"))
	require.Equal(t, "audio/ogg; codecs=opus", voice.Content["info"].(map[string]any)["mimetype"])

	// A sticker.
	g.media["/v/sticker"] = webp
	require.True(t, g.dispatch(message(contactJID, contactJID, "RSTICKER", &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
		Mimetype: proto.String("image/webp"), DirectPath: proto.String("/v/sticker"), MediaKey: []byte("k"),
		FileLength: proto.Uint64(uint64(len(webp))), Width: proto.Uint32(512), Height: proto.Uint32(512)}})))
	sticker := waitEvent(portal, "sticker", func(e mxEvent) bool { return e.Type == "m.sticker" })
	require.True(t, strings.HasPrefix(str(sticker.Content["url"]), "mxc://"))

	// Alice votes in the WhatsApp poll: a WhatsApp vote for "Tacos".
	sentBefore := len(g.sentMessages())
	send("org.matrix.msc3381.poll.response", "v1", map[string]any{
		"m.relates_to":                     map[string]any{"rel_type": "m.reference", "event_id": poll.EventID},
		"org.matrix.msc3381.poll.response": map[string]any{"answers": []string{answerID(2)}},
	})
	out := g.waitSent(sentBefore + 1)
	require.Len(t, out, sentBefore+1)
	upd := out[sentBefore].msg.GetPollUpdateMessage()
	require.NotNil(t, upd, "a WhatsApp vote")
	require.Equal(t, "RPOLL", upd.GetPollCreationMessageKey().GetID())
	decrypted, err := g.DecryptPollVote(ctx, message(contactJID, own, "x", out[sentBefore].msg))
	require.NoError(t, err)
	require.Equal(t, [][]byte{hashOf("Tacos")}, decrypted.GetSelectedOptions())

	// Alice's own poll (answer IDs as her client makes them), and her vote.
	myPoll := send("org.matrix.msc3381.poll.start", "p1", map[string]any{
		"org.matrix.msc1767.text": "Dinner?\n1. Curry\n2. Ramen",
		"org.matrix.msc3381.poll.start": map[string]any{
			"kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 1,
			"question": map[string]any{"org.matrix.msc1767.text": "Dinner?"},
			"answers": []map[string]any{
				{"id": "x7Fq", "org.matrix.msc1767.text": "Curry"},
				{"id": "Kp2z", "org.matrix.msc1767.text": "Ramen"},
			},
		},
	})
	out = g.waitSent(sentBefore + 2)
	require.Len(t, out, sentBefore+2)
	pc := out[sentBefore+1].msg.GetPollCreationMessage()
	require.NotNil(t, pc)
	require.Equal(t, "Dinner?", pc.GetName())
	require.Equal(t, "Ramen", pc.GetOptions()[1].GetOptionName())
	send("org.matrix.msc3381.poll.response", "v2", map[string]any{
		"m.relates_to":                     map[string]any{"rel_type": "m.reference", "event_id": myPoll},
		"org.matrix.msc3381.poll.response": map[string]any{"answers": []string{"Kp2z"}},
	})
	out = g.waitSent(sentBefore + 3)
	require.Len(t, out, sentBefore+3)
	decrypted, err = g.DecryptPollVote(ctx, message(contactJID, own, "y", out[sentBefore+2].msg))
	require.NoError(t, err)
	require.Equal(t, [][]byte{hashOf("Ramen")}, decrypted.GetSelectedOptions())
	require.Equal(t, out[sentBefore+1].id, out[sentBefore+2].msg.GetPollUpdateMessage().GetPollCreationMessageKey().GetID())

	// Alice ends her poll: WhatsApp cannot close one, so a text replying
	// to it says so.
	send("org.matrix.msc3381.poll.end", "e1", map[string]any{
		"m.relates_to":            map[string]any{"rel_type": "m.reference", "event_id": myPoll},
		"org.matrix.msc1767.text": "The poll has ended. Top answer: Ramen",
	})
	out = g.waitSent(sentBefore + 3)
	ended := g.waitSent(sentBefore + 4)
	require.Len(t, ended, sentBefore+4)
	et := ended[sentBefore+3].msg.GetExtendedTextMessage()
	require.NotNil(t, et)
	require.Equal(t, "The poll has ended. Top answer: Ramen", et.GetText())
	require.Equal(t, out[sentBefore+1].id, et.GetContextInfo().GetStanzaID(), "a reply to the poll")
	sentBefore++

	// Alice's location.
	send("m.room.message", "l1", map[string]any{"msgtype": "m.location", "body": "Eiffel Tower", "geo_uri": "geo:48.8584,2.2945;u=10"})
	out = g.waitSent(sentBefore + 4)
	require.Len(t, out, sentBefore+4)
	wl := out[sentBefore+3].msg.GetLocationMessage()
	require.NotNil(t, wl)
	require.InDelta(t, 48.8584, wl.GetDegreesLatitude(), 1e-9)
	require.Equal(t, "Eiffel Tower", wl.GetName())

	// Privacy canaries: no number in the logs; no option text in the
	// logs or the bridge's database.
	text := logs.String()
	requireNoNumbers(t, text, "logs")
	require.NoError(t, r.Stop(ctx))
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(dbPath + suffix)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, content := range []string{"Lunch where", "Sushi", "Tacos", "Dinner?", "Ramen", "Ferry Building", "Eiffel"} {
			require.NotContains(t, string(raw), content, "database file%s", suffix)
			require.NotContains(t, text, content, "logs")
		}
		requireNoNumbers(t, string(raw), fmt.Sprintf("database file%s", suffix))
	}
}

// In an encrypted portal the bridge reads poll starts by decrypting them:
// a contact's vote in a WhatsApp poll reaches the portal (the ghost's
// response is sent only once the encrypted poll start was read), and
// Alice's response to that encrypted poll becomes a WhatsApp vote for the
// right option.
func TestEncryptedPollWithDendrite(t *testing.T) {
	if !matrix.EncryptionCompiled() {
		t.Skip("encryption is not compiled in (build without the goolm tag)")
	}
	h := startRichHS(t, true)
	var enc map[string]any
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/rooms/"+url.PathEscape(h.portal)+"/state/m.room.encryption/", nil, &enc))
	require.Equal(t, "m.megolm.v1.aes-sha2", enc["algorithm"])

	require.True(t, h.g.dispatch(message(contactJID, contactJID, "EPOLL", &waE2E.Message{PollCreationMessageV3: &waE2E.PollCreationMessage{
		Name: proto.String("Lunch where?"), SelectableOptionsCount: proto.Uint32(1),
		Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}},
	}})))
	ghostPrefix := "@" + h.cfg.Appservice.GhostPrefix
	poll := h.waitEvent(h.portal, "encrypted poll start", func(e mxEvent) bool {
		return e.Type == "m.room.encrypted" && strings.HasPrefix(e.Sender, ghostPrefix) && e.EventID != h.first
	})
	require.True(t, h.g.dispatch(message(contactJID, contactJID, "EVOTE", contactVote(h.g, "EPOLL", "Sushi"))))
	h.waitEvent(h.portal, "the encrypted vote", func(e mxEvent) bool {
		return e.Type == "m.room.encrypted" && e.Sender == poll.Sender && e.EventID != poll.EventID && e.EventID != h.first
	})

	// The bridge numbers its answers from 1: "2" is Sushi.
	sentBefore := len(h.g.sentMessages())
	h.send("org.matrix.msc3381.poll.response", "ev1", map[string]any{
		"m.relates_to":                     map[string]any{"rel_type": "m.reference", "event_id": poll.EventID},
		"org.matrix.msc3381.poll.response": map[string]any{"answers": []string{"2"}},
	})
	out := h.g.waitSent(sentBefore + 1)
	require.Len(t, out, sentBefore+1)
	vote, err := h.g.DecryptPollVote(h.ctx, message(contactJID, h.own, "x", out[sentBefore].msg))
	require.NoError(t, err)
	require.Equal(t, [][]byte{hashOf("Sushi")}, vote.GetSelectedOptions())
	requireNoNumbers(t, h.logs.String(), "logs")
	require.NotContains(t, h.logs.String(), "Sushi")
}
