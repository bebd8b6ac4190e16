package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSafetyEndToEnd runs the daemon on a real Dendrite with the local fake
// Twilio: a user who starts more new SMS chats than
// safety.new_chats_per_hour is refused and told why, and the admin room
// gets a flag; `report` reaches the admin room with the contact's
// pseudonym and counts but no message content unless asked (`report with
// last 1`); `block` stops delivery from that contact, who is not told.
func TestSafetyEndToEnd(t *testing.T) {
	d := startSMSDaemon(t, "debug")
	hs, token, bot, dm, portal := d.hs, d.token, d.bot, d.dm, d.portal

	modToken, adminRoom := makeAdminRoom(t, d)
	reconfigure(t, d, map[string]string{
		"new_chats_per_hour":         "2",
		"admin_room":                 `"` + adminRoom + `"`,
		"sender_messages_per_minute": "2",
	})

	// The chat started before the restart counts: one more is allowed,
	// the third in the hour is refused, with the reason.
	started := func() int {
		n := 0
		for _, ev := range messages(t, hs, token, dm) {
			if b, _ := ev.Content["body"].(string); ev.Sender == bot && strings.Contains(b, "Started a chat with that number") {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, started())
	d.say(dm, "s1", "start +14155550124")
	require.Eventually(t, func() bool { return started() == 2 }, 20*time.Second, 100*time.Millisecond, "the second new chat was not started")
	d.say(dm, "s2", "start +14155550125")
	refusal := waitNotice(t, hs, token, dm, bot, "new_chats_per_hour")
	require.Contains(t, refusal, "Could not start the chat")
	require.Contains(t, refusal, "2 per hour")
	require.Equal(t, 2, started())
	flag := waitNotice(t, hs, modToken, adminRoom, bot, "new chats in an hour")
	require.Contains(t, flag, "@alice:"+hs.ServerName)

	// The contact writes; alice reports them without and then with content.
	incoming := "http://" + d.listen + "/sms/twilio/incoming"
	post := func(sid, body string) string {
		form := url.Values{
			"AccountSid": {e2eSID}, "MessageSid": {sid},
			"From": {e2eContact}, "To": {e2ePool}, "Body": {body}, "NumMedia": {"0"},
		}
		req, err := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSign(t, incoming, form))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		reply, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return string(reply)
	}
	post("SM"+strings.Repeat("b", 32), "hi from sms, please report me")
	waitPortalBody := func(body string) bool {
		for _, ev := range messages(t, hs, token, portal) {
			if b, _ := ev.Content["body"].(string); b == body && ev.Sender != bot {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return waitPortalBody("hi from sms, please report me") }, 20*time.Second, 100*time.Millisecond)

	d.say(portal, "rep1", "!sb report unwanted texts")
	answer := waitNotice(t, hs, token, portal, bot, "Reported to the bridge admins")
	require.Contains(t, answer, "no message content")
	report := waitNotice(t, hs, modToken, adminRoom, bot, "Report from @alice")
	require.Contains(t, report, "ph_")
	require.NotContains(t, report, "[number]", "timestamps are not mistaken for numbers")
	require.Contains(t, report, "recently: 1")
	require.Contains(t, report, `"unwanted texts"`)
	require.Contains(t, report, "No message content is included")
	require.NotContains(t, report, "please report me")
	require.NotContains(t, report, contactNoPl)

	d.say(portal, "rep2", "!sb report with last 1")
	waitNotice(t, hs, token, portal, bot, "the 1 message(s) you chose to include")
	withContent := waitNotice(t, hs, modToken, adminRoom, bot, "last 1 message(s)")
	require.Contains(t, withContent, "hi from sms, please report me", "the message the reporter explicitly included")
	require.NotContains(t, withContent, contactNoPl)

	// Block: nothing more from that contact reaches alice; they are not told.
	d.say(portal, "blk", "!sb block")
	waitNotice(t, hs, token, portal, bot, "Blocked ph_")
	reply := post("SM"+strings.Repeat("c", 32), "are you there after the block")
	require.NotContains(t, reply, "<Message>", "the blocked contact is not told")
	time.Sleep(2 * time.Second)
	require.False(t, waitPortalBody("are you there after the block"), "a blocked contact's message reached the portal")
	// Alice can still write to them — at most 2 messages a minute here
	// (safety.sender_messages_per_minute); the third is refused and she is
	// told why, in the room, as a reply.
	before := len(d.fake.sent())
	d.say(portal, "out1", "a last word")
	d.say(portal, "out2", "and another")
	d.say(portal, "out3", "one too many")
	tooMany := waitNotice(t, hs, token, portal, bot, "was not delivered: too many messages")
	require.Contains(t, tooMany, "2 per minute")
	require.Eventually(t, func() bool { return len(d.fake.sent()) == before+2 }, 20*time.Second, 100*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // pacing: one segment a second
	require.Len(t, d.fake.sent(), before+2, "the refused message is not sent")

	// The metrics count it all.
	resp, err := http.Get("http://" + d.listen + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{
		`switchboard_safety_throttles_total{limit="new_chats"} 1`,
		`switchboard_safety_throttles_total{limit="sender"} 1`,
		`switchboard_delivery_paced_total{network="sms"}`,
		`switchboard_safety_reports_total 2`,
		`switchboard_safety_blocks_total 1`,
		`switchboard_safety_blocked_deliveries_total 1`,
	} {
		require.Contains(t, string(metrics), m)
	}

	d.stop()
	require.NotContains(t, d.logs.String(), contactNoPl)
	require.NotContains(t, d.logs.String(), "please report me")
	require.NotContains(t, d.logs.String(), "after the block")
}

// makeAdminRoom registers a moderator who creates a room and invites the
// bot, and waits until the bot joined. It returns the moderator's token
// and the room.
func makeAdminRoom(t *testing.T, d *smsDaemon) (string, string) {
	hs, bot := d.hs, d.bot
	_, modToken := hs.RegisterUser(t, "mod", "correct horse battery")
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", modToken,
		map[string]any{"invite": []string{bot}, "preset": "private_chat", "name": "switchboard admins"}, &created))
	require.Eventually(t, func() bool {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(created.RoomID)+"/joined_members", modToken, nil, &members)
		_, ok := members.Joined[bot]
		return ok
	}, 20*time.Second, 100*time.Millisecond, "the bot did not join the admin room")
	return modToken, created.RoomID
}

// reconfigure sets keys of the safety section in the daemon's config file
// and restarts it.
func reconfigure(t *testing.T, d *smsDaemon, keys map[string]string) {
	cfgPath := filepath.Join(d.dir, "config.yaml")
	data, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	text := string(data)
	for k, v := range keys {
		re := regexp.MustCompile(`(?m)^(  ` + regexp.QuoteMeta(k) + `:).*$`)
		require.True(t, re.MatchString(text), "no %s in the config", k)
		text = re.ReplaceAllLiteralString(text, "  "+k+": "+v)
	}
	require.NoError(t, os.WriteFile(cfgPath, []byte(text), 0o600))
	d.restart()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + d.listen + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)
}

// TestSafetyHighCostEndToEnd: SMS to a high-cost destination
// (safety.high_cost_prefixes) beyond safety.high_cost_per_hour are refused:
// the sender is told why in the room and the admin room is flagged.
func TestSafetyHighCostEndToEnd(t *testing.T) {
	d := startSMSDaemon(t, "info")
	modToken, adminRoom := makeAdminRoom(t, d)
	reconfigure(t, d, map[string]string{
		"high_cost_prefixes": `["+1415555"]`,
		"high_cost_per_hour": "1",
		"admin_room":         `"` + adminRoom + `"`,
	})
	d.say(d.portal, "hc1", "first to a premium number")
	require.Eventually(t, func() bool { return len(d.fake.sent()) == 1 }, 20*time.Second, 100*time.Millisecond)
	d.say(d.portal, "hc2", "second to a premium number")
	notice := waitNotice(t, d.hs, d.token, d.portal, d.bot, "was not delivered to sms")
	require.Contains(t, notice, "high-cost destinations allows 1 per hour")
	flag := waitNotice(t, d.hs, modToken, adminRoom, d.bot, "high-cost destinations")
	require.Contains(t, flag, "@alice:"+d.hs.ServerName)
	require.NotContains(t, flag, contactNoPl)
	time.Sleep(time.Second)
	require.Len(t, d.fake.sent(), 1, "the refused SMS was not sent")
}
