package main

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRetentionEndToEnd: `!sb retention 30s` in an SMS portal, a message
// each way with a daemon restart in between; within 35 s both Matrix events
// are redacted and the database files hold no trace of them.
func TestRetentionEndToEnd(t *testing.T) {
	d := startSMSDaemon(t, "info")
	hs, token, bot, portal := d.hs, d.token, d.bot, d.portal
	d.say(portal, "r1", "!sb retention 30s")
	waitNotice(t, hs, token, portal, bot, "30s (conversation setting)")
	// Matrix clients see the timer in the room state.
	var timer struct {
		Type  string `json:"type"`
		Timer int64  `json:"timer"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodGet,
		"/_matrix/client/v3/rooms/"+url.PathEscape(portal)+"/state/com.beeper.disappearing_timer/", token, nil, &timer))
	require.Equal(t, "after_send", timer.Type)
	require.Equal(t, int64(30000), timer.Timer)

	// Matrix → SMS.
	var sent struct {
		EventID string `json:"event_id"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPut,
		"/_matrix/client/v3/rooms/"+url.PathEscape(portal)+"/send/m.room.message/out1", token,
		map[string]any{"msgtype": "m.text", "body": "goes away soon"}, &sent))
	outAt := time.Now()
	outEvent := sent.EventID
	require.Eventually(t, func() bool { return len(d.fake.sent()) == 1 }, 20*time.Second, 50*time.Millisecond)

	d.restart()

	// SMS → Matrix, after the restart.
	form := url.Values{
		"AccountSid": {e2eSID}, "MessageSid": {"SM" + strings.Repeat("b", 32)},
		"From": {e2eContact}, "To": {e2ePool}, "Body": {"gone soon too"}, "NumMedia": {"0"},
	}
	incoming := "http://" + d.listen + "/sms/twilio/incoming"
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSign(t, incoming, form))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false // still starting
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond)
	inAt := time.Now()
	var inEvent string
	require.Eventually(t, func() bool {
		for _, ev := range messages(t, hs, token, portal) {
			if b, _ := ev.Content["body"].(string); b == "gone soon too" {
				inEvent = ev.EventID
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond)

	redacted := func(eventID string) bool {
		var ev struct {
			Content  map[string]any `json:"content"`
			Unsigned map[string]any `json:"unsigned"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(portal)+"/event/"+url.PathEscape(eventID), token, nil, &ev)
		_, by := ev.Unsigned["redacted_because"]
		return by && len(ev.Content) == 0
	}
	require.Eventually(t, func() bool { return redacted(outEvent) }, time.Until(outAt.Add(35*time.Second)), 250*time.Millisecond,
		"the Matrix user's message was not redacted within 35 s")
	require.Eventually(t, func() bool { return redacted(inEvent) }, time.Until(inAt.Add(35*time.Second)), 250*time.Millisecond,
		"the SMS contact's message was not redacted within 35 s")

	d.stop()
	files, err := filepath.Glob(filepath.Join(d.dir, "switchboard.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, id := range []string{outEvent, inEvent} {
			require.False(t, bytes.Contains(data, []byte(id)), "event %s still in %s", id, filepath.Base(f))
		}
	}
}
