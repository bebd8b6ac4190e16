package matrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// putTxn sends a transaction straight to the connector's handler, as the
// homeserver would.
func putTxn(t *testing.T, h http.Handler, token, txnID string, events ...map[string]any) int {
	t.Helper()
	data, err := json.Marshal(map[string]any{"events": events})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/"+txnID, bytes.NewReader(data))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func textEvent(eventID, room, sender, text string) map[string]any {
	return map[string]any{
		"event_id":         eventID,
		"room_id":          room,
		"sender":           sender,
		"type":             "m.room.message",
		"origin_server_ts": time.Now().UnixMilli(),
		"content":          map[string]any{"msgtype": "m.text", "body": text},
	}
}

// TestHSTokenChecked: the appservice API refuses requests without the
// hs_token (401) or with a wrong one (403), on every endpoint.
func TestHSTokenChecked(t *testing.T) {
	e := startBridge(t, testConfig(t), "", nil)
	h := e.conn.AppserviceHandler()
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"ping without token", http.MethodPost, "/_matrix/app/v1/ping", "", http.StatusUnauthorized},
		{"ping with wrong token", http.MethodPost, "/_matrix/app/v1/ping", "wrong", http.StatusForbidden},
		{"ping with as_token", http.MethodPost, "/_matrix/app/v1/ping", e.cfg.Appservice.ASToken, http.StatusForbidden},
		{"ping", http.MethodPost, "/_matrix/app/v1/ping", e.cfg.Appservice.HSToken, http.StatusOK},
		{"txn without token", http.MethodPut, "/_matrix/app/v1/transactions/1", "", http.StatusUnauthorized},
		{"txn with wrong token", http.MethodPut, "/_matrix/app/v1/transactions/1", "x" + e.cfg.Appservice.HSToken, http.StatusForbidden},
		{"user query with wrong token", http.MethodGet, "/_matrix/app/v1/users/@sb_x:localhost", "wrong", http.StatusForbidden},
		{"bot user query", http.MethodGet, "/_matrix/app/v1/users/@switchboard:localhost", e.cfg.Appservice.HSToken, http.StatusOK},
		{"unknown ghost query", http.MethodGet, "/_matrix/app/v1/users/@sb_unknown:localhost", e.cfg.Appservice.HSToken, http.StatusNotFound},
		{"room alias query", http.MethodGet, "/_matrix/app/v1/rooms/%23x:localhost", e.cfg.Appservice.HSToken, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body *bytes.Reader
			if tc.method == http.MethodGet {
				body = bytes.NewReader(nil)
			} else {
				body = bytes.NewReader([]byte(`{"events":[]}`))
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tc.want, rec.Code, rec.Body.String())
		})
	}
	// A refused transaction delivered nothing.
	assert.Empty(t, e.lb.Sent())
}

// TestTransactionDeduplicated: a transaction replayed with the same txnId,
// and the same event in a second transaction, produce one delivery — also
// after a restart on the same database (SQLite, and PostgreSQL when
// SWITCHBOARD_TEST_POSTGRES is set).
func TestTransactionDeduplicated(t *testing.T) {
	dbtest.Each(t, testTransactionDeduplicated)
}

func testTransactionDeduplicated(t *testing.T, dbo database.Options) {
	cfg := testConfig(t)
	e := startBridgeDB(t, cfg, dbo, nil)
	ctx := context.Background()
	const room = "!portal:localhost"
	_, err := e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: room},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	h := e.conn.AppserviceHandler()
	token := cfg.Appservice.HSToken
	evt := textEvent("$event1", room, "@alice:localhost", "hello")

	require.Equal(t, http.StatusOK, putTxn(t, h, token, "txn1", evt))
	require.Equal(t, http.StatusOK, putTxn(t, h, token, "txn1", evt))
	require.Equal(t, http.StatusOK, putTxn(t, h, token, "txn2", evt))
	sent := e.lb.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.ChatID("chat-1"), sent[0].Chat)
	assert.Equal(t, "hello", sent[0].Delivery.Event.Content.Body)
	assert.Equal(t, bridge.UserID("@alice:localhost"), sent[0].Delivery.Event.Sender.ID)

	// Restart on the same database: the old txnId and event stay handled.
	e.stop()
	e2 := startBridgeDB(t, cfg, e.dbo, nil)
	h2 := e2.conn.AppserviceHandler()
	require.Equal(t, http.StatusOK, putTxn(t, h2, token, "txn1", evt))
	require.Equal(t, http.StatusOK, putTxn(t, h2, token, "txn3", evt, textEvent("$event2", room, "@alice:localhost", "second")))
	sent = e2.lb.WaitSent(1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	sent = e2.lb.Sent()
	require.Len(t, sent, 1, "only the new event is delivered after the restart")
	assert.Equal(t, "second", sent[0].Delivery.Event.Content.Body)
}

// TestEventsFromBridgeIgnored: the bot's and ghosts' own events, echoed
// back by the homeserver, are not bridged again.
func TestEventsFromBridgeIgnored(t *testing.T) {
	cfg := testConfig(t)
	e := startBridge(t, cfg, "", nil)
	const room = "!portal:localhost"
	_, err := e.router.CreateConversation(context.Background(),
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: room},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	h := e.conn.AppserviceHandler()
	require.Equal(t, http.StatusOK, putTxn(t, h, cfg.Appservice.HSToken, "t1",
		textEvent("$a", room, "@switchboard:localhost", "bot"),
		textEvent("$b", room, "@sb_abcdefgh:localhost", "ghost"),
		textEvent("$c", room, "@bob:localhost", "bob")))
	sent := e.lb.WaitSent(1, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	sent = e.lb.Sent()
	require.Len(t, sent, 1)
	assert.Equal(t, "bob", sent[0].Delivery.Event.Content.Body)
}

// TestTransactionBeforeStart: until the connector runs, transactions get
// 503 so the homeserver retries them.
func TestTransactionBeforeStart(t *testing.T) {
	cfg := testConfig(t)
	e := startBridge(t, cfg, "", nil)
	e.stop()
	code := putTxn(t, e.conn.AppserviceHandler(), cfg.Appservice.HSToken, "t1", textEvent("$a", "!r:localhost", "@bob:localhost", "x"))
	assert.Equal(t, http.StatusServiceUnavailable, code)
}
