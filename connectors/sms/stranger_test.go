package sms_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
)

// TestStrangerAutoReply: someone texting a pool number that no
// conversation uses with them gets an automatic reply, at most hourly per
// pool number, that their message was not delivered or kept (none once
// they opted out), and the admins' hook gets their pseudonym only.
func TestStrangerAutoReply(t *testing.T) {
	const stranger = "+14155550199"
	e := newEnv(t)
	clock := fakeclock.New(time.Now())
	sms.SetNow(e.sms, clock.Now)
	advance := clock.Advance
	var flagged []bridge.Sender
	var pools []string
	h := e.sms.Hooks()
	h.OnStranger = func(_ context.Context, contact bridge.Sender, pool string) {
		flagged = append(flagged, contact)
		pools = append(pools, pool)
	}
	e.sms.SetHooks(h)

	n := 0
	text := func(to, body string) string {
		t.Helper()
		n++
		f := inbound(sid(n), stranger, to, body)
		rec := e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f))
		require.Equal(t, http.StatusOK, rec.Code)
		return rec.Body.String()
	}
	for _, step := range []struct {
		name, to, body string
		advance        time.Duration
		replied        bool
	}{
		{"first message: told", pool1, "hello? canary-stranger-77", 0, true},
		{"again within the hour: quiet", pool1, "anyone?", 30 * time.Minute, false},
		{"another pool number: told", pool2, "hi", 0, true},
		{"an hour later: told again", pool1, "still nobody?", 31 * time.Minute, true},
		{"HELP is Twilio's to answer", pool1, "HELP", 2 * time.Hour, false},
		{"STOP is Twilio's to answer", pool1, "STOP", 2 * time.Hour, false},
		{"opted out: never told", pool1, "one more", 2 * time.Hour, false},
	} {
		advance(step.advance)
		body := text(step.to, step.body)
		if step.replied {
			assert.Contains(t, body, "<Message>", step.name)
			assert.Contains(t, body, "was not delivered, and it was not kept", step.name)
		} else {
			assert.NotContains(t, body, "<Message>", step.name)
		}
	}
	time.Sleep(settle)
	assert.Empty(t, e.mx.Sent(), "nothing delivered")
	require.Len(t, flagged, 5, "admins' hook called for each message that reaches nobody (FlagAdmins limits itself to hourly)")
	assert.Regexp(t, `^Contact [a-z2-7]{6}$`, flagged[0].DisplayName)
	assert.Equal(t, []string{pool1, pool1, pool2, pool1, pool1}, pools)
	logs := e.logs.String()
	assert.NotContains(t, logs, "canary-stranger")
	assert.NotContains(t, logs, "4155550199")
	assert.Equal(t, 3.0, counter(t, e, "sb_sms_messages_total", "result", "auto_reply"))
}
