package matrix_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

func rawEvent(eventID, typ string, content map[string]any) map[string]any {
	return map[string]any{
		"event_id":         eventID,
		"room_id":          "!portal:localhost",
		"sender":           "@alice:localhost",
		"type":             typ,
		"origin_server_ts": time.Now().UnixMilli(),
		"content":          content,
	}
}

// TestTransactionEventKinds: each kind of Matrix event becomes the
// matching normalized event on the other leg.
func TestTransactionEventKinds(t *testing.T) {
	cfg := testConfig(t)
	e := startBridge(t, cfg, "", nil)
	_, err := e.router.CreateConversation(context.Background(),
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: "!portal:localhost"},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	h := e.conn.AppserviceHandler()
	redaction := rawEvent("$redact", "m.room.redaction", map[string]any{"redacts": "$html"})
	redaction["redacts"] = "$html"
	events := []map[string]any{
		rawEvent("$html", "m.room.message", map[string]any{
			"msgtype": "m.text", "body": "hi *there*", "format": "org.matrix.custom.html", "formatted_body": "hi <em>there</em>"}),
		rawEvent("$notice", "m.room.message", map[string]any{"msgtype": "m.notice", "body": "a notice"}),
		rawEvent("$emote", "m.room.message", map[string]any{"msgtype": "m.emote", "body": "waves"}),
		rawEvent("$reply", "m.room.message", map[string]any{
			"msgtype": "m.text", "body": "> <@bob:localhost> hi *there*\n\nanswer",
			"format": "org.matrix.custom.html", "formatted_body": "<mx-reply><blockquote>hi</blockquote></mx-reply>answer",
			"m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": "$html"}}}),
		rawEvent("$edit", "m.room.message", map[string]any{
			"msgtype": "m.text", "body": "* hi again",
			"m.new_content": map[string]any{"msgtype": "m.text", "body": "hi again"},
			"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": "$html"}}),
		rawEvent("$react", "m.reaction", map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": "$html", "key": "🎉"}}),
		rawEvent("$timer", "m.room.message", map[string]any{
			"msgtype": "m.text", "body": "self-destructs",
			"com.beeper.disappearing_timer": map[string]any{"type": "after_send", "timer": 60000}}),
		redaction,
	}
	require.Equal(t, http.StatusOK, putTxn(t, h, cfg.Appservice.HSToken, "kinds", events...))
	sent := e.lb.WaitSent(len(events), 5*time.Second)
	require.Len(t, sent, len(events))
	ev := func(i int) *bridge.Event { return sent[i].Delivery.Event }
	for _, s := range sent {
		t.Logf("sent %s %s attempt %d", s.Kind, s.Delivery.Event.SourceID, s.Delivery.Attempt)
	}

	assert.Equal(t, bridge.Content{Type: bridge.MsgText, Body: "hi *there*", HTML: "hi <em>there</em>"}, *ev(0).Content)
	assert.Equal(t, bridge.MsgNotice, ev(1).Content.Type)
	assert.Equal(t, bridge.MsgEmote, ev(2).Content.Type)
	assert.Equal(t, "answer", ev(3).Content.Body, "reply fallback removed")
	assert.Equal(t, "answer", ev(3).Content.HTML)
	assert.Equal(t, sent[0].RemoteID, sent[3].Delivery.ReplyTo, "reply mapped to the loopback ID")
	assert.Equal(t, bridge.KindEdit, sent[4].Kind)
	assert.Equal(t, "hi again", ev(4).Content.Body)
	assert.Equal(t, sent[0].RemoteID, sent[4].Delivery.Target)
	assert.Equal(t, bridge.KindReaction, sent[5].Kind)
	assert.Equal(t, "🎉", ev(5).Reaction)
	assert.Equal(t, time.Minute, ev(6).Timer)
	assert.Equal(t, bridge.KindDelete, sent[7].Kind)
	assert.Equal(t, sent[0].RemoteID, sent[7].Delivery.Target)
}
