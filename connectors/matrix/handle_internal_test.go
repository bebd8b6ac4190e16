package matrix

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
)

// ownEcho recognizes the bridge's own sends (the bot's, a ghost's, a
// double puppet's) as isPuppetEcho and the sender checks do, although it
// decodes a message's content only when the double-puppet key can be in
// it: spelled out, or behind a \u escape.
func TestOwnEcho(t *testing.T) {
	c, _ := leaseConnector(t, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, time.Minute)
	alice := id.UserID("@alice:localhost")
	for _, tc := range []struct {
		name    string
		sender  id.UserID
		content event.Content
		want    bool
	}{
		{"plain message", alice, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}, false},
		{"no content", alice, event.Content{}, false},
		{"marked", alice, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi","fi.mau.double_puppet_source":"switchboard"}`)}, true},
		{"marked, key escaped", alice, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi","fi.mau.double\u005fpuppet_source":"switchboard"}`)}, true},
		{"marked, value escaped", alice, event.Content{VeryRaw: json.RawMessage(`{"fi.mau.double_puppet_source":"switch\u0062oard"}`)}, true},
		{"another bridge's marker", alice, event.Content{VeryRaw: json.RawMessage(`{"fi.mau.double_puppet_source":"mautrix-whatsapp"}`)}, false},
		{"key in the body only", alice, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"fi.mau.double_puppet_source"}`)}, false},
		{"escaped text, no key", alice, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"caf\u00e9"}`)}, false},
		{"marked, parsed", alice, event.Content{Raw: map[string]any{"fi.mau.double_puppet_source": "switchboard"}}, true},
		{"bot", c.bot, event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}, true},
		{"ghost", c.GhostUserID(bridge.NetworkSMS, "x"), event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evt := &event.Event{Sender: tc.sender, Content: tc.content}
			require.Equal(t, tc.want, c.ownEcho(evt))
			if tc.sender == alice {
				require.Equal(t, c.isPuppetEcho(evt), c.ownEcho(evt), "as isPuppetEcho decides")
			}
		})
	}
}

// parseContent parses a message's content once: again it finds it parsed
// (batchable parses before handleEvent); content that does not parse
// fails every time once Parsed is reset, as batchable does.
func TestParseContentOnce(t *testing.T) {
	good := &event.Event{Type: event.EventMessage, Content: event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}}
	require.NoError(t, parseContent(good))
	parsed := good.Content.Parsed
	require.NoError(t, parseContent(good))
	require.Same(t, parsed, good.Content.Parsed, "not parsed again")
	require.Equal(t, event.MessageEventType, good.Type.Class)

	bad := &event.Event{Type: event.EventMessage, Content: event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":5}`)}}
	require.Error(t, parseContent(bad))
	bad.Content.Parsed = nil
	require.Error(t, parseContent(bad), "still malformed the second time")
}

// readBody reads what io.ReadAll(io.LimitReader(body, limit+1)) reads,
// whatever Content-Length says: known, unknown, a lie either way, beyond
// the limit.
func TestReadBody(t *testing.T) {
	const limit = 1000
	for _, tc := range []struct {
		name   string
		size   int
		length int64
	}{
		{"empty", 0, 0},
		{"known", 600, 600},
		{"unknown", 600, -1},
		{"length too small", 600, 10},
		{"length too large", 600, 5000},
		{"at the limit", limit, limit},
		{"beyond the limit", 3 * limit, 3 * limit},
		{"beyond the limit, unknown", 3 * limit, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Repeat("x", tc.size)
			r := httptest.NewRequest(http.MethodPut, "/", iotest.OneByteReader(strings.NewReader(body)))
			r.ContentLength = tc.length
			got, err := readBody(r, limit)
			require.NoError(t, err)
			want, err := io.ReadAll(io.LimitReader(strings.NewReader(body), limit+1))
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}
