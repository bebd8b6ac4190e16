package sms_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

const settle = 300 * time.Millisecond

func TestIncomingSignature(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")

	form := inbound(sid(1), contactA, pool1, "hi from sms")
	t.Run("valid", func(t *testing.T) {
		rec := e.post("/sms/twilio/incoming", form, sign("/sms/twilio/incoming", form))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Body.String(), "<Response/>")
		assert.Contains(t, rec.Header().Get("Content-Type"), "text/xml")
		sent := e.mx.WaitSent(1, 5*time.Second)
		require.Len(t, sent, 1)
		assert.Equal(t, mxLeg.Chat, sent[0].Chat)
		ev := sent[0].Delivery.Event
		assert.Equal(t, "hi from sms", ev.Content.Body)
		assert.Equal(t, bridge.RemoteID(sid(1)), ev.SourceID)
		assert.NotContains(t, ev.Sender.DisplayName, "4155550100")
		assert.NotContains(t, string(ev.Sender.ID), "4155550100")
		assert.Regexp(t, `^Contact [a-z2-7]{6}$`, ev.Sender.DisplayName)
		assert.Regexp(t, `^ph_[a-z2-7]{24}$`, string(ev.Sender.ID), "the identity pseudonym, shared by every phone network")
	})

	for _, tc := range []struct {
		name string
		form url.Values
		sig  string
	}{
		{"missing", inbound(sid(2), contactA, pool1, "unsigned"), ""},
		{"forged", inbound(sid(3), contactA, pool1, "forged"), "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="},
		{"body changed after signing", func() url.Values {
			f := inbound(sid(4), contactA, pool1, "original")
			return f
		}(), ""},
		{"signed for another URL", inbound(sid(5), contactA, pool1, "other url"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			switch tc.name {
			case "body changed after signing":
				sig = sign("/sms/twilio/incoming", tc.form)
				tc.form.Set("Body", "tampered")
			case "signed for another URL":
				sig = sign("/sms/twilio/status", tc.form)
			}
			rec := e.post("/sms/twilio/incoming", tc.form, sig)
			assert.Equal(t, http.StatusForbidden, rec.Code)
		})
	}
	time.Sleep(settle)
	assert.Len(t, e.mx.Sent(), 1, "nothing refused was delivered")
}

func TestIncomingDuplicateMessageSid(t *testing.T) {
	e := newEnv(t)
	e.conversation(contactA, "!room1")
	form := inbound(sid(1), contactA, pool1, "once")
	for range 3 {
		rec := e.post("/sms/twilio/incoming", form, sign("/sms/twilio/incoming", form))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	time.Sleep(settle)
	assert.Len(t, e.mx.Sent(), 1)
}

func TestIncomingMMS(t *testing.T) {
	e := newEnv(t)
	e.conversation(contactA, "!room1")
	form := inbound(sid(1), contactA, pool1, "look")
	form.Set("NumMedia", "2")
	base := "https://api.twilio.com/2010-04-01/Accounts/" + accountSID + "/Messages/" + sid(1) + "/Media/"
	form.Set("MediaUrl0", base+"ME1")
	form.Set("MediaContentType0", "image/png")
	form.Set("MediaUrl1", base+"ME2")
	form.Set("MediaContentType1", "video/mp4")
	rec := e.post("/sms/twilio/incoming", form, sign("/sms/twilio/incoming", form))
	require.Equal(t, http.StatusOK, rec.Code)
	sent := e.mx.WaitSent(2, 5*time.Second)
	require.Len(t, sent, 2)
	assert.Equal(t, bridge.MsgImage, sent[0].Delivery.Event.Content.Type)
	assert.Equal(t, "look", sent[0].Delivery.Event.Content.Body)
	assert.Equal(t, []byte("png-bytes"), sent[0].Media, "attachment fetched from api_url with the account's credentials")
	assert.Equal(t, bridge.MsgVideo, sent[1].Delivery.Event.Content.Type)

	t.Run("foreign media URL refused", func(t *testing.T) {
		_, err := e.sms.DownloadMedia(context.Background(), &bridge.Media{Ref: "https://evil.example/2010-04-01/Accounts/ACother/Messages/x/Media/y"})
		require.ErrorIs(t, err, sms.ErrMediaRef)
		rc, err := e.sms.DownloadMedia(context.Background(), &bridge.Media{Ref: base + "ME1"})
		require.NoError(t, err)
		data, _ := io.ReadAll(rc)
		rc.Close()
		assert.Equal(t, "png-bytes", string(data))
	})
}

func TestStopThenSendRefused(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")

	stop := inbound(sid(1), contactA, pool1, "STOP")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", stop, sign("/sms/twilio/incoming", stop)).Code)
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.MsgNotice, sent[0].Delivery.Event.Content.Type)
	assert.Contains(t, sent[0].Delivery.Event.Content.Body, "opted out")

	t.Run("every conversation with the contact is told", func(t *testing.T) {
		ctx := context.Background()
		conv2, err := e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!room2"})
		require.NoError(t, err)
		chat2, err := e.sms.ChatFor(ctx, contactA, conv2)
		require.NoError(t, err)
		require.NoError(t, e.router.AddLeg(ctx, conv2, bridge.Leg{Network: bridge.NetworkSMS, Chat: chat2}))
		stop2 := inbound(sid(3), contactA, pool1, "Stop")
		require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", stop2, sign("/sms/twilio/incoming", stop2)).Code)
		sent := e.mx.WaitSent(3, 5*time.Second)
		require.Len(t, sent, 3)
		assert.ElementsMatch(t, []bridge.ChatID{"!room1", "!room2"}, []bridge.ChatID{sent[1].Chat, sent[2].Chat})
	})

	e.sendFromMatrix(mxLeg, "$ev1", "are you there?")
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
		return r.SourceID == "$ev1" && r.State == bridge.StateFailed
	})
	require.True(t, ok, "the sender is told")
	require.ErrorIs(t, st.Err, sms.ErrOptedOut)
	require.ErrorIs(t, st.Err, bridge.ErrPermanent)
	assert.Empty(t, e.twilio.Requests(), "nothing reached Twilio")

	start := inbound(sid(2), contactA, pool1, "start")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", start, sign("/sms/twilio/incoming", start)).Code)
	e.sendFromMatrix(mxLeg, "$ev2", "welcome back")
	reqs := e.twilio.waitRequests(t, 1)
	assert.Equal(t, "welcome back", reqs[0].Get("Body"))
}

func TestStatusCallbacks(t *testing.T) {
	e := newEnv(t)
	conv, mxLeg, _ := e.conversation(contactA, "!room1")
	e.sendFromMatrix(mxLeg, "$ev1", "hello")
	reqs := e.twilio.waitRequests(t, 1)
	assert.Equal(t, publicURL+"/sms/twilio/status", reqs[0].Get("StatusCallback"))
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$ev1" })
	require.True(t, ok)
	require.Equal(t, bridge.StateDelivered, st.State)
	callback := func(msgSid, status, code string) url.Values {
		f := url.Values{"MessageSid": {msgSid}, "SmsSid": {msgSid}, "AccountSid": {accountSID}, "MessageStatus": {status}, "SmsStatus": {status}, "From": {pool1}, "To": {contactA}}
		if code != "" {
			f.Set("ErrorCode", code)
		}
		return f
	}
	sid1 := "SM00000000000000000000000000000001"
	unsigned := callback(sid1, "delivered", "")
	assert.Equal(t, http.StatusForbidden, e.post("/sms/twilio/status", unsigned, "").Code)
	assert.Equal(t, http.StatusForbidden, e.post("/sms/twilio/status", unsigned, sign("/sms/twilio/incoming", unsigned)).Code)

	e.sendFromMatrix(mxLeg, "$ev2", "second")
	e.twilio.waitRequests(t, 2)
	st2, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$ev2" })
	require.True(t, ok)
	sid2 := "SM00000000000000000000000000000002"

	for _, s := range []struct{ sid, twilio, code string }{
		{sid1, "queued", ""}, // same as Twilio's answer to the send: not reported again
		{sid1, "sent", ""},
		{sid1, "sent", ""}, // repeated: reported once
		{sid1, "delivered", ""},
		{sid2, "undelivered", "30003"},
		{"SM0000000000000000000000000000ffff", "delivered", ""}, // not ours: ignored
	} {
		f := callback(s.sid, s.twilio, s.code)
		rec := e.post("/sms/twilio/status", f, sign("/sms/twilio/status", f))
		require.Less(t, rec.Code, 300, rec.Body.String())
	}
	e.mu.Lock()
	calls := append([]statusCall(nil), e.statuses...)
	e.mu.Unlock()
	require.Len(t, calls, 3)
	assert.Equal(t, statusCall{conv, st.Message, "sent", ""}, calls[0])
	assert.Equal(t, statusCall{conv, st.Message, string(bridge.StateDelivered), ""}, calls[1])
	assert.Equal(t, statusCall{conv, st2.Message, string(bridge.StateFailed), "30003"}, calls[2])

	for in, want := range map[string]sms.Status{
		"accepted": sms.StatusQueued, "queued": sms.StatusQueued, "sending": sms.StatusQueued, "sent": sms.StatusSent,
		"delivered": sms.StatusDelivered, "read": sms.StatusDelivered, "undelivered": sms.StatusFailed, "failed": sms.StatusFailed,
	} {
		got, ok := sms.MapStatus(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	_, ok = sms.MapStatus("exploded")
	assert.False(t, ok)
}

// TestPoolRouting: two pool numbers, one contact, three conversations.
// Conversations 1 and 2 get a pool number each; the third shares the pool
// number of the contact's most recently active conversation, and replies
// to a shared number go to whichever conversation last sent from it.
// TestPoolRouting runs on both databases: on PostgreSQL a send records
// its sid and marks the chat active in one statement.
func TestPoolRouting(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testPoolRouting(t, newEnvOn(t, be.postgres)) })
	}
}

func testPoolRouting(t *testing.T, e *env) {
	ctx := context.Background()
	conv1, mx1, sms1 := e.conversation(contactA, "!room1")
	tick()
	conv2, mx2, sms2 := e.conversation(contactA, "!room2")
	assert.NotEqual(t, sms1.Chat, sms2.Chat)

	from := func(chat bridge.ChatID) string {
		n, err := e.sms.PoolNumber(ctx, chat)
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, pool1, from(sms1.Chat))
	assert.Equal(t, pool2, from(sms2.Chat))

	// ChatFor is idempotent per (contact, conversation).
	again, err := e.sms.ChatFor(ctx, "+1 415-555-0100", conv1)
	require.NoError(t, err)
	assert.Equal(t, sms1.Chat, again)

	tick()
	e.sendFromMatrix(mx1, "$a", "from conversation 1")
	reqs := e.twilio.waitRequests(t, 1)
	assert.Equal(t, pool1, reqs[0].Get("From"))
	assert.Equal(t, contactA, reqs[0].Get("To"))
	waitDelivered(t, e, "$a")
	tick()

	// Pool exhausted: conversation 3 shares conversation 1's number (the
	// most recently active), and the caller is told which conversations.
	conv3, mx3, sms3 := e.conversation(contactA, "!room3")
	assert.Equal(t, pool1, from(sms3.Chat))
	e.mu.Lock()
	require.Len(t, e.shared, 1)
	assert.Equal(t, []bridge.ConversationID{conv1}, e.shared[0])
	e.mu.Unlock()
	others, err := e.sms.SharedWith(ctx, sms3.Chat)
	require.NoError(t, err)
	assert.Equal(t, []bridge.ConversationID{conv1}, others)
	others, err = e.sms.SharedWith(ctx, sms2.Chat)
	require.NoError(t, err)
	assert.Empty(t, others)
	_ = conv2
	_ = conv3

	reply := func(n int, to string) bridge.ChatID {
		t.Helper()
		f := inbound(sid(n), contactA, to, "reply")
		before := len(e.mx.Sent())
		require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
		sent := e.mx.WaitSent(before+1, 5*time.Second)
		require.Greater(t, len(sent), before)
		return sent[len(sent)-1].Chat
	}
	// Each inbound message lands in exactly one room.
	assert.Equal(t, mx2.Chat, reply(1, pool2), "pool 2 is conversation 2's alone")
	assert.Equal(t, mx3.Chat, reply(2, pool1), "shared pool 1: conversation 3 is the newest")
	tick()
	e.sendFromMatrix(mx1, "$b", "conversation 1 again")
	waitDelivered(t, e, "$b")
	assert.Equal(t, mx1.Chat, reply(3, pool1), "shared pool 1: conversation 1 sent last")

	t.Run("unknown pairing without hook is dropped", func(t *testing.T) {
		f := inbound(sid(9), "+14155550199", pool1, "who is this")
		before := len(e.mx.Sent())
		require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
		time.Sleep(settle)
		assert.Len(t, e.mx.Sent(), before)
	})
}

func TestUnroutedHook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var got bridge.ChatID
	e.sms.SetHooks(sms.Hooks{OnUnrouted: func(ctx context.Context, chat bridge.ChatID, pool string) (bridge.ConversationID, error) {
		got = chat
		assert.Equal(t, pool2, pool)
		return e.router.CreateConversation(ctx, bridge.Leg{Network: netMatrix, Chat: "!inbox"}, bridge.Leg{Network: bridge.NetworkSMS, Chat: chat})
	}})
	f := inbound(sid(1), contactA, pool2, "hello?")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.ChatID("!inbox"), sent[0].Chat)
	n, err := e.sms.PoolNumber(ctx, got)
	require.NoError(t, err)
	assert.Equal(t, pool2, n)
}

func waitDelivered(t *testing.T, e *env, sourceID string) {
	t.Helper()
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
		return string(r.SourceID) == sourceID && r.State != bridge.StateRetrying
	})
	require.True(t, ok)
	require.Equal(t, bridge.StateDelivered, st.State, "%v", st.Err)
}

// tick makes the next activity timestamp strictly later (millisecond clock).
func tick() { time.Sleep(3 * time.Millisecond) }

// TestPostgres runs the schema and the pool, opt-out and status paths on
// PostgreSQL (skipped unless SWITCHBOARD_TEST_POSTGRES is set).
func TestPostgres(t *testing.T) {
	e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: true}
	e.start(e.twilio.srv.URL)
	_, mx1, _ := e.conversation(contactA, "!room1")
	tick()
	e.conversation(contactA, "!room2")
	tick()
	_, mx3, sms3 := e.conversation(contactA, "!room3")
	others, err := e.sms.SharedWith(context.Background(), sms3.Chat)
	require.NoError(t, err)
	assert.Len(t, others, 1)
	e.sendFromMatrix(mx1, "$1", "hello")
	waitDelivered(t, e, "$1")
	f := inbound(sid(1), contactA, pool2, "hi")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	stop := inbound(sid(2), contactA, pool2, "stop")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", stop, sign("/sms/twilio/incoming", stop)).Code)
	e.sendFromMatrix(mx3, "$2", "refused")
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$2" })
	require.True(t, ok)
	assert.ErrorIs(t, st.Err, sms.ErrOptedOut)
	cb := url.Values{"MessageSid": {"SM00000000000000000000000000000001"}, "AccountSid": {accountSID}, "MessageStatus": {"delivered"}}
	require.Equal(t, http.StatusNoContent, e.post("/sms/twilio/status", cb, sign("/sms/twilio/status", cb)).Code)
	e.mu.Lock()
	assert.Len(t, e.statuses, 1)
	e.mu.Unlock()
	e.sms.Prune(context.Background())
}

// TestIncomingBodyReadErrors: a body that is too large is answered 413; a
// body whose reading fails (cut off, or trickled past the listener's read
// timeout) is a bad request, not "too large". Neither is delivered.
func TestIncomingBodyReadErrors(t *testing.T) {
	e := newEnv(t)
	e.conversation(contactA, "!room1")
	form := inbound(sid(1), contactA, pool1, "hi")
	for _, tc := range []struct {
		name string
		body io.Reader
		want int
	}{
		{"too large", strings.NewReader(form.Encode() + "&Pad=" + strings.Repeat("x", 1<<20)), http.StatusRequestEntityTooLarge},
		{"read fails", io.MultiReader(strings.NewReader(form.Encode()), iotest.ErrReader(errors.New("i/o timeout"))), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/sms/twilio/incoming", tc.body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", sign("/sms/twilio/incoming", form))
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)
			assert.Equal(t, tc.want, rec.Code)
		})
	}
	time.Sleep(settle)
	assert.Empty(t, e.mx.Sent())
}
