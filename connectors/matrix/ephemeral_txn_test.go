package matrix_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// putBody sends a transaction given as a JSON object (events default to
// none).
func putBody(t testing.TB, h http.Handler, token, txnID string, body map[string]any) int {
	t.Helper()
	if _, ok := body["events"]; !ok {
		body["events"] = []any{}
	}
	req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/"+txnID, strings.NewReader(jsonOf(t, body)))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestEphemeralInTransaction: typing notifications and read receipts that
// a homeserver pushes in transactions (MSC2409; Synapse's unstable name
// and the stable one) reach the other leg as the bot's /sync brings them
// on Dendrite (TestMatrixTypingAndReceipts); presence is accepted and
// ignored, and a malformed ephemeral event is skipped. No homeserver here
// pushes ephemeral events (Dendrite does not), so this is tested by
// contract. The shapes:
//
//	{"de.sorunome.msc2409.ephemeral": [
//	   {"type": "m.typing", "room_id": "!portal:localhost", "content": {"user_ids": ["@alice:localhost"]}},
//	   {"type": "m.presence", "sender": "@alice:localhost", "content": {"presence": "online"}}]}
//	{"ephemeral": [
//	   {"type": "m.receipt", "room_id": "!portal:localhost",
//	    "content": {"$event": {"m.read": {"@alice:localhost": {"ts": 1700000000000}}}}}]}
func TestEphemeralInTransaction(t *testing.T) {
	for _, field := range []string{"de.sorunome.msc2409.ephemeral", "ephemeral"} {
		t.Run(field, func(t *testing.T) {
			e := startStubBridge(t)
			h := e.conn.AppserviceHandler()
			token := e.cfg.Appservice.HSToken
			ctx := context.Background()

			// A message from the contact, so there is something to read.
			require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
				Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-1",
				Sender:  bridge.Sender{ID: "contact-1", DisplayName: "Contact"},
				Content: &bridge.Content{Type: bridge.MsgText, Body: "read me"},
			}))
			var msgID string
			waitFor(t, 10*time.Second, "the contact's message in the portal", func() bool {
				sent := e.hs.sent()
				i := slices.IndexFunc(sent, func(s stubSend) bool { return s.Body == "read me" })
				if i < 0 {
					return false
				}
				// The stub's event IDs (stubhs_test.go).
				msgID = "$stub" + strings.Repeat("x", (i+1)%7)
				return true
			})
			e.waitMapped(t, bridge.NetworkMatrix, bridge.RemoteID(msgID))

			code := putBody(t, h, token, "typing-on", map[string]any{field: []any{
				map[string]any{"type": "m.typing", "room_id": stubPortal, "content": map[string]any{"user_ids": []string{"@alice:localhost"}}},
				map[string]any{"type": "m.presence", "sender": "@alice:localhost", "content": map[string]any{"presence": "online"}},
				map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": []string{"@alice:localhost"}}},
				"not an event",
			}})
			require.Equal(t, http.StatusOK, code)
			waitFor(t, 10*time.Second, "typing on the loopback leg", func() bool {
				typing := e.lb.Typing()
				return len(typing) == 1 && typing[0]
			})
			code = putBody(t, h, token, "typing-off", map[string]any{field: []any{
				map[string]any{"type": "m.typing", "room_id": stubPortal, "content": map[string]any{"user_ids": []string{}}},
			}})
			require.Equal(t, http.StatusOK, code)
			waitFor(t, 10*time.Second, "typing stopped on the loopback leg", func() bool {
				typing := e.lb.Typing()
				return len(typing) == 2 && !typing[1]
			})

			code = putBody(t, h, token, "receipt", map[string]any{field: []any{
				map[string]any{"type": "m.receipt", "room_id": stubPortal, "content": map[string]any{
					msgID: map[string]any{"m.read": map[string]any{"@alice:localhost": map[string]any{"ts": time.Now().UnixMilli()}}},
				}},
			}})
			require.Equal(t, http.StatusOK, code)
			sent := e.lb.WaitSent(1, 10*time.Second)
			require.Len(t, sent, 1, "one receipt, nothing for presence")
			assert.Equal(t, bridge.KindReadReceipt, sent[0].Kind)
			assert.Equal(t, bridge.RemoteID("lb-1"), sent[0].Delivery.Target)
		})
	}
}
