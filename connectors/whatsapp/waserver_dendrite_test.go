package whatsapp

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/internal/testutil/waserver"
)

// qrTap is a real whatsmeow client whose QR codes the test also reads:
// the bot shows them to the Matrix user as images, and the test, playing
// the phone, scans what whatsmeow generated.
type qrTap struct {
	*whatsmeow.Client
	codes chan<- string
}

func (q *qrTap) GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	in, err := q.Client.GetQRChannel(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan whatsmeow.QRChannelItem)
	go func() {
		defer close(out)
		for item := range in {
			if item.Event == whatsmeow.QRChannelEventCode {
				select {
				case q.codes <- item.Code:
				default:
				}
			}
			out <- item
		}
	}()
	return out, nil
}

// tappedSessions are serverSessions whose login clients hand their QR
// codes to the test.
type tappedSessions struct {
	*serverSessions
	codes chan string
}

func (s *tappedSessions) New(ctx context.Context) (Client, error) {
	cli, err := s.serverSessions.New(ctx)
	if err != nil {
		return nil, err
	}
	return &qrTap{Client: cli.(*whatsmeow.Client), codes: s.codes}, nil
}

// The whole way, at the protocol level: a real Matrix user on Dendrite
// (the production Matrix connector) logs in to WhatsApp from her bot DM,
// the production WhatsApp connector keeping its session in the sealed
// store and talking to a WhatsApp server through a real whatsmeow client;
// a contact's real whatsmeow client writes to her, a portal appears, she
// reads the text from the contact's ghost and answers, and the contact's
// client decrypts the answer. No number is in the portal's state, the
// ghost's name or the bridge's log.
func TestServerWithDendrite(t *testing.T) {
	useWAServer()
	srvLogs := &testenv.SyncBuffer{}
	srv, err := waserver.New(waserver.Options{Log: zerolog.New(srvLogs).Level(serverLogLevel)})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	codes := make(chan string, 16)
	h := startDendriteBridge(t, dendriteBridgeOptions{Sessions: func(db *dbutil.Database, secret string, log zerolog.Logger) Sessions {
		sql, err := NewSQLSessions(db, secret, log)
		require.NoError(t, err)
		return &tappedSessions{serverSessions: &serverSessions{SQLSessions: sql, srv: srv}, codes: codes}
	}})
	e := &srvEnv{t: t, ctx: h.ctx, srv: srv, log: zerolog.New(srvLogs), logs: srvLogs, wa: h.wa}

	events := func(room string) []mxEvent {
		var resp struct {
			Chunk []mxEvent `json:"chunk"`
		}
		h.do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=100", nil, &resp)
		return resp.Chunk
	}
	waitEvent := func(room, what string, fn func(mxEvent) bool) mxEvent {
		t.Helper()
		var got mxEvent
		require.Eventually(t, func() bool {
			for _, ev := range events(room) {
				if fn(ev) {
					got = ev
					return true
				}
			}
			return false
		}, 30*time.Second, 100*time.Millisecond, what)
		return got
	}

	// Alice's DM with the bot.
	bot := h.bot()
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/createRoom", map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	dm := created.RoomID
	require.Eventually(t, func() bool {
		var m struct {
			Joined map[string]any `json:"joined"`
		}
		h.do(http.MethodGet, "/rooms/"+url.PathEscape(dm)+"/joined_members", nil, &m)
		_, ok := m.Joined[bot]
		return ok
	}, 20*time.Second, 100*time.Millisecond, "bot joins the DM")

	// `login whatsapp`: the bot shows a QR code, the phone scans it.
	require.Equal(t, http.StatusOK, h.do(http.MethodPut, "/rooms/"+url.PathEscape(dm)+"/send/m.room.message/login1",
		map[string]any{"msgtype": "m.text", "body": "login whatsapp"}, nil))
	waitEvent(dm, "QR image in the DM", func(ev mxEvent) bool { return ev.Sender == bot && ev.Content["msgtype"] == "m.image" })
	var code string
	select {
	case code = <-codes:
	case <-time.After(20 * time.Second):
		t.Fatal("no QR code generated")
	}
	srv.AddAccount(aliceNumber, "Alice")
	require.NoError(t, srv.ScanQR(code, aliceNumber))
	waitEvent(dm, "logged in", func(ev mxEvent) bool {
		return ev.Sender == bot && strings.Contains(str(ev.Content["body"]), "now logged in to WhatsApp")
	})
	e.waitConnected(h.alice)
	l := h.wa.loginOf(h.alice)
	require.NotNil(t, l)
	own := l.jid
	require.Equal(t, digitsOf(aliceNumber), own.User)

	// The contact writes from their own WhatsApp client.
	carol := e.newContact(contactNumber, "Carol")
	_, err = carol.cli.SendMessage(h.ctx, own.ToNonAD(), &waE2E.Message{Conversation: proto.String("hello from whatsapp")})
	require.NoError(t, err)

	var invites struct {
		Rooms struct {
			Invite map[string]any `json:"invite"`
		} `json:"rooms"`
	}
	var portal string
	require.Eventually(t, func() bool {
		h.do(http.MethodGet, "/sync?timeout=0", nil, &invites)
		for room := range invites.Rooms.Invite {
			if room != dm {
				portal = room
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "alice is invited to a portal")
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/join/"+url.PathEscape(portal), map[string]any{}, nil))
	got := waitEvent(portal, "the contact's text", func(ev mxEvent) bool {
		return ev.Type == "m.room.message" && str(ev.Content["body"]) == "hello from whatsapp"
	})
	require.True(t, strings.HasPrefix(got.Sender, "@"+h.cfg.Appservice.GhostPrefix), "sent by the contact's ghost, not %s", got.Sender)

	// Alice answers in the portal; the contact's client decrypts it.
	require.Equal(t, http.StatusOK, h.do(http.MethodPut, "/rooms/"+url.PathEscape(portal)+"/send/m.room.message/answer1",
		map[string]any{"msgtype": "m.text", "body": "hello from matrix"}, nil))
	msgs := carol.waitMessages(t, 1)
	require.Equal(t, "hello from matrix", msgs[0].Message.GetConversation())
	require.Equal(t, digitsOf(aliceNumber), msgs[0].Info.Sender.User)

	// No number where a Matrix user or an operator can read it.
	requireNoNumbers(t, got.Sender, "ghost ID")
	var profile struct {
		DisplayName string `json:"displayname"`
	}
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/profile/"+url.PathEscape(got.Sender), nil, &profile))
	require.Equal(t, "Carol", profile.DisplayName)
	var state []map[string]any
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/rooms/"+url.PathEscape(portal)+"/state", nil, &state))
	require.NotEmpty(t, state)
	requireNoNumbers(t, mustJSON(t, state), "portal state")
	requireNoNumbers(t, h.logs.String(), "bridge logs")
}
