package matrix_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// stubHomeserver answers the few client-server API calls the connector
// makes as the bot (versions, whoami, profile, joins, sends) and records
// the messages the bot sends, so tests that push hostile transactions
// straight into the appservice API at fuzzing speed can count side
// effects. Tests of behaviour on Matrix use a real Dendrite instead.
type stubHomeserver struct {
	*httptest.Server
	mu    sync.Mutex
	sends []stubSend
}

// stubSend is one message the bot sent.
type stubSend struct {
	Room    string
	ReplyTo string
	Body    string
}

func newStubHomeserver(t testing.TB, bot string) *stubHomeserver {
	s := &stubHomeserver{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		path := r.URL.Path
		switch {
		case strings.HasSuffix(path, "/versions"):
			_, _ = w.Write([]byte(`{"versions":["v1.1","v1.11"]}`))
		case strings.HasSuffix(path, "/account/whoami"):
			_ = json.NewEncoder(w).Encode(map[string]string{"user_id": bot})
		case strings.HasSuffix(path, "/createRoom"):
			_ = json.NewEncoder(w).Encode(map[string]string{"room_id": stubPortal})
		case strings.Contains(path, "/join"):
			_ = json.NewEncoder(w).Encode(map[string]string{"room_id": "!joined:localhost"})
		case strings.Contains(path, "/send/"):
			var content struct {
				Body      string `json:"body"`
				RelatesTo struct {
					InReplyTo struct {
						EventID string `json:"event_id"`
					} `json:"m.in_reply_to"`
				} `json:"m.relates_to"`
			}
			_ = json.NewDecoder(r.Body).Decode(&content)
			room := strings.SplitN(strings.TrimPrefix(path[strings.Index(path, "/rooms/"):], "/rooms/"), "/", 2)[0]
			s.mu.Lock()
			s.sends = append(s.sends, stubSend{Room: room, ReplyTo: content.RelatesTo.InReplyTo.EventID, Body: content.Body})
			n := len(s.sends)
			s.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]string{"event_id": "$stub" + strings.Repeat("x", n%7)})
		case strings.HasSuffix(path, "/joined_members"):
			_, _ = w.Write([]byte(`{"joined":{}}`))
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// sent returns the messages the bot sent so far.
func (s *stubHomeserver) sent() []stubSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stubSend(nil), s.sends...)
}

// repliesTo counts the bot's messages that reply to an event.
func (s *stubHomeserver) repliesTo(evt string) int {
	n := 0
	for _, m := range s.sent() {
		if m.ReplyTo == evt {
			n++
		}
	}
	return n
}
