package matrix

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
)

// parseEventSeeds are events of every shape a transaction carries, and
// hostile ones.
var parseEventSeeds = []string{
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","origin_server_ts":1,"content":{"msgtype":"m.text","body":"hi"}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","content":{"msgtype":"m.text","body":"hi","m.relates_to":{"rel_type":"m.replace","event_id":"$b"},"m.new_content":{"msgtype":"m.text","body":"ho"}},"unsigned":{"age":5,"transaction_id":"t"}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.reaction","content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$b","key":"👍"}}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.redaction","redacts":"$b","content":{}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.sticker","content":{"body":"s","url":"mxc://x/y"}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.member","state_key":"@v:x","content":{"membership":"join","displayname":"V"},"prev_content":{"membership":"invite"},"replaces_state":"$p"}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.encrypted","content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AAAA","session_id":"s","sender_key":"k","device_id":"D"}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","content":"hi"}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","content":null}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","content":[1]}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message"}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.reaction","content":7}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","origin_server_ts":"soon","content":{}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"m.room.message","unsigned":{"age":"old"},"content":{}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":7,"content":{}}`,
	`{"room_id":"!r:x","sender":"@u:x","type":"m.room.message","content":{}}`,
	`{"event_id":"$a","room_id":"!r:x","sender":"@u:x","type":"com.example.custom","content":"not an object"}`,
	`null`, `"x"`, `42`, `[]`, `{}`,
}

// mautrixParse is parseEvent as it was: mautrix's own decoding.
func mautrixParse(raw []byte) *event.Event {
	var evt *event.Event
	if err := json.Unmarshal(raw, &evt); err != nil || evt == nil {
		return nil
	}
	if evt.ID == "" || evt.RoomID == "" || evt.Sender == "" || evt.Type.Type == "" {
		return nil
	}
	return evt
}

// checkParseEvent: parseEvent accepts exactly the events mautrix's
// decoding accepts, with the same fields; only the content map of
// messages, stickers, reactions and redactions is left out.
func checkParseEvent(t *testing.T, raw []byte) {
	want := mautrixParse(raw)
	got := parseEvent(raw)
	if want == nil {
		assert.Nil(t, got, "%s", raw)
		return
	}
	require.NotNil(t, got, "%s", raw)
	switch want.Type {
	case event.EventMessage, event.EventSticker, event.EventReaction, event.EventRedaction:
		want.Content.Raw = nil
	}
	assert.Equal(t, want, got, "%s", raw)
	// What the handlers then read parses alike.
	perr := got.Content.ParseRaw(got.Type)
	werr := want.Content.ParseRaw(want.Type)
	assert.Equal(t, werr == nil, perr == nil)
	assert.Equal(t, want.Content.Parsed, got.Content.Parsed)
}

func TestParseEventMatchesMautrix(t *testing.T) {
	for _, raw := range parseEventSeeds {
		checkParseEvent(t, []byte(raw))
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, raw := range parseEventSeeds {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			t.Skip("a transaction's events are valid JSON")
		}
		checkParseEvent(t, []byte(raw))
	})
}
