package sms_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

// counter reads a counter from the test registry.
func counter(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestSendFields(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	e.sendFromMatrix(mxLeg, "$1", "héllo €")
	reqs := e.twilio.waitRequests(t, 1)
	assert.Equal(t, contactA, reqs[0].Get("To"))
	assert.Equal(t, pool1, reqs[0].Get("From"))
	assert.Equal(t, "héllo €", reqs[0].Get("Body"), "1:1 chats are not prefixed")
	assert.Equal(t, publicURL+"/sms/twilio/status", reqs[0].Get("StatusCallback"))
	waitDelivered(t, e, "$1")
	assert.Equal(t, 1.0, counter(t, e, "sb_sms_segments_total", "encoding", "gsm7"))

	e.sendFromMatrix(mxLeg, "$2", strings.Repeat("я", 71))
	e.twilio.waitRequests(t, 2)
	waitDelivered(t, e, "$2")
	assert.Equal(t, 2.0, counter(t, e, "sb_sms_segments_total", "encoding", "ucs2"))
}

func TestSendGroupPrefix(t *testing.T) {
	e := newEnv(t)
	e.sms.SetHooks(sms.Hooks{IsGroup: func(context.Context, bridge.ConversationID) bool { return true }})
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	e.sendFromMatrix(mxLeg, "$1", "hi all")
	reqs := e.twilio.waitRequests(t, 1)
	assert.Equal(t, "Alice: hi all", reqs[0].Get("Body"))
}

func TestSendLongBodySplitAndResume(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	body := strings.Repeat("lorem ipsum ", 300) // 3600 chars: 3 parts
	// The second part fails once with a 5xx: the retry must not send the
	// first part again.
	e.twilio.failOnly(1, http.StatusInternalServerError, `{"code":20500,"status":500,"message":"oops"}`)
	e.sendFromMatrix(mxLeg, "$1", body)
	waitDelivered(t, e, "$1")
	reqs := e.twilio.Requests()
	require.Len(t, reqs, 4, "3 parts + 1 retried")
	var got []string
	for i, r := range reqs {
		if i == 1 {
			continue // the failed attempt
		}
		assert.LessOrEqual(t, len([]rune(r.Get("Body"))), sms.MaxBodyLength)
		got = append(got, r.Get("Body"))
	}
	assert.Equal(t, reqs[1].Get("Body"), reqs[2].Get("Body"), "the failed part is what was retried")
	assert.Equal(t, strings.Fields(body), strings.Fields(strings.Join(got, " ")))
}

func TestSendErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		permanent bool
		target    error
	}{
		{"unsubscribed", 400, `{"code":21610,"status":400,"message":"Attempt to send to unsubscribed recipient"}`, true, sms.ErrOptedOut},
		{"invalid number", 400, `{"code":21211,"status":400,"message":"Invalid 'To' Phone Number"}`, true, sms.ErrInvalidNumber},
		{"server error", 503, `{"code":20503,"status":503,"message":"Service unavailable"}`, false, nil},
		{"gateway html", 502, `<html>bad gateway</html>`, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			_, mxLeg, _ := e.conversation(contactA, "!room1")
			e.twilio.fail(tc.status, tc.body)
			e.sendFromMatrix(mxLeg, "$1", "hello")
			st, ok := e.mx.WaitStatus(10*time.Second, func(r bridge.StatusReport) bool { return r.State == bridge.StateFailed })
			require.True(t, ok)
			require.ErrorIs(t, st.Err, bridge.ErrPermanent, "failed in the end")
			if tc.target != nil {
				assert.ErrorIs(t, st.Err, tc.target)
			}
			if tc.permanent {
				assert.Len(t, e.twilio.Requests(), 1, "permanent errors are not retried")
			} else {
				assert.Len(t, e.twilio.Requests(), 3, "transient errors are retried up to MaxAttempts")
				assert.Contains(t, st.Err.Error(), "gave up")
			}
			if tc.name == "unsubscribed" {
				// Twilio's 21610 is recorded: the next send is refused locally.
				e.twilio.fail(0, "")
				e.sendFromMatrix(mxLeg, "$2", "again")
				st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$2" })
				require.True(t, ok)
				assert.ErrorIs(t, st.Err, sms.ErrOptedOut)
				assert.Len(t, e.twilio.Requests(), 1)
			}
		})
	}
}

// TestThrottledSendsWait: Twilio answering 429 as many times as the
// router's MaxAttempts does not fail a message: it waits in the queue for
// each Retry-After and goes out. While the pool number is throttled,
// nothing else is sent from it (a message in another chat on the same
// number waits too), and /health shows the SMS connector degraded until a
// send goes through.
func TestThrottledSendsWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, mxA, _ := e.conversation(contactA, "!room1")
	_, mxB, _ := e.conversation("+14155550199", "!room2")
	const throttled = 3 // = MaxAttempts: before, the message failed here
	e.twilio.failFirstN(throttled, http.StatusTooManyRequests, `{"code":20429,"status":429,"message":"Too Many Requests"}`)
	e.sendFromMatrix(mxA, "$1", "hello")
	e.twilio.waitRequests(t, 1)
	require.Eventually(t, func() bool { return e.sms.Health(ctx).State == bridge.HealthDegraded }, 5*time.Second, 10*time.Millisecond)
	e.sendFromMatrix(mxB, "$2", "to the other chat")

	deadline := time.Now().Add(20 * time.Second)
	for len(e.twilio.Requests()) < throttled+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	reqs, at := e.twilio.Requests(), e.twilio.times()
	require.Len(t, reqs, throttled+2, "three throttled answers, then both messages sent once")
	require.Equal(t, reqs[0].Get("From"), reqs[len(reqs)-1].Get("From"), "both chats use the same pool number")
	// The other chat's message, written after the first 429, waited for
	// its Retry-After (1s) instead of going out at once. (Later requests
	// can arrive together: both deliveries are released when a hold ends.)
	assert.GreaterOrEqual(t, at[1].Sub(at[0]), 900*time.Millisecond, "a message went out on a throttled pool number")
	var bodies []string
	for _, r := range reqs[throttled:] {
		bodies = append(bodies, r.Get("Body"))
	}
	assert.ElementsMatch(t, []string{"hello", "to the other chat"}, bodies)
	for _, id := range []string{"$1", "$2"} {
		st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
			return string(r.SourceID) == id && r.State != bridge.StateRetrying
		})
		require.True(t, ok, id)
		assert.Equal(t, bridge.StateDelivered, st.State, "%s: throttling is not a failure", id)
	}
	require.Eventually(t, func() bool { return e.sms.Health(ctx).State == bridge.HealthOK }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, float64(throttled), counter(t, e, "sb_sms_messages_total", "result", "throttled"))
}

func TestChatForRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conv, err := e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!r"})
	require.NoError(t, err)

	_, err = e.sms.ChatFor(ctx, "+442079460123", conv)
	var ce *sms.CountryError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "GB", ce.Region)
	assert.ErrorIs(t, err, sms.ErrCountryNotAllowed)
	assert.NotContains(t, err.Error(), "2079460123")

	_, err = e.sms.ChatFor(ctx, "+15551234567", conv)
	assert.ErrorIs(t, err, sms.ErrInvalidNumber)
	_, err = e.sms.ChatFor(ctx, pool1, conv)
	assert.ErrorIs(t, err, sms.ErrInvalidNumber, "the bridge's own numbers are not contacts")

	chat, err := e.sms.ChatFor(ctx, contactA, conv)
	require.NoError(t, err)
	assert.Regexp(t, `^sms_[a-z2-7]{24}$`, string(chat))
	assert.NotContains(t, string(chat), "4155550100")
}

// TestChatForWrittenForms: a contact written or pasted any usual way
// reaches the same chat as its E.164 form; the region decides
// sms.allowed_countries; malformed numbers are ErrInvalidNumber and the
// error does not echo them. (The cases of the former TestNormalizeNumber.)
func TestChatForWrittenForms(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conv, err := e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!r"})
	require.NoError(t, err)
	want, err := e.sms.ChatFor(ctx, contactA, conv)
	require.NoError(t, err)
	for _, in := range []string{
		"+14155550100", " +1 (415) 555-0100 ", "+1.415.555.0100", "001 415 555 0100",
		"＋１ ４１５ ５５５ ０１００", "\u202a+1 415-555-0100\u202c", "+1\u00a0415\u00a0555\u00a00100",
	} {
		chat, err := e.sms.ChatFor(ctx, in, conv)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, chat, "%q", in)
	}
	_, err = e.sms.ChatFor(ctx, "+16135550123", conv)
	require.NoError(t, err, "CA is allowed")
	var ce *sms.CountryError
	_, err = e.sms.ChatFor(ctx, "+44 20 7946 0123", conv)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "GB", ce.Region)
	for _, in := range []string{"+15551234567", "4155550100", "+1", "", "+1415555010012345", "hello"} {
		_, err := e.sms.ChatFor(ctx, in, conv)
		require.ErrorIs(t, err, sms.ErrInvalidNumber, "%q", in)
		if in != "" {
			assert.NotContains(t, err.Error(), in)
		}
	}
	_, err = e.sms.ChatFor(ctx, "+15551234567", conv)
	assert.ErrorIs(t, err, sms.ErrUnassignedNumber, "possible, but in no country's assigned ranges")
}

func TestCountryRemovedAfterChatCreated(t *testing.T) {
	// A chat created while its country was allowed is refused once the
	// admin removes the country: the check runs at every send.
	e := newEnv(t, func(c *config.Config) { c.SMS.AllowedCountries = []string{"CA"} })
	ctx := context.Background()
	conv, err := e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!r"})
	require.NoError(t, err)
	_, err = e.sms.ChatFor(ctx, contactA, conv)
	require.ErrorIs(t, err, sms.ErrCountryNotAllowed)
	assert.Empty(t, e.twilio.Requests())
}

// TestSendGuestPrefix: in a one-to-one chat, a message from someone other
// than the portal's owner (a guest) carries their name, so the contact
// does not take it for the owner's.
func TestSendGuestPrefix(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	require.NoError(t, e.mx.Receive(context.Background(), &bridge.Event{
		Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$guest",
		Sender:  bridge.Sender{ID: "@carol:example.org", DisplayName: "Carol", Guest: true},
		Content: &bridge.Content{Type: bridge.MsgText, Body: "not alice"},
	}))
	e.sendFromMatrix(mxLeg, "$owner", "alice here")
	reqs := e.twilio.waitRequests(t, 2)
	assert.Equal(t, "Carol: not alice", reqs[0].Get("Body"))
	assert.Equal(t, "alice here", reqs[1].Get("Body"), "the owner's own messages are not prefixed")
}
