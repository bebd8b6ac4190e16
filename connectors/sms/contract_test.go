package sms_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/internal/testutil/prism"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// TestTwilioContract sends through the connector to Prism serving Twilio's
// own OpenAPI description: every request the connector makes must be
// accepted (201), and a malformed one (an AccountSid that does not match
// the spec) must be rejected, which proves the check can fail.
func TestTwilioContract(t *testing.T) {
	mock := prism.Start(t, prism.SpecPath(t))

	t.Run("accepted", func(t *testing.T) {
		e := &env{t: t, logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry()}
		e.start(mock.URL)
		e.sms.SetHooks(sms.Hooks{IsGroup: func(context.Context, bridge.ConversationID) bool { return true }})
		_, mxLeg, _ := e.conversation(contactA, "!room1")
		_, mxLeg2, _ := e.conversation("+16135550123", "!room2")
		e.sendFromMatrix(mxLeg, "$text", "hello from switchboard")
		e.sendFromMatrix(mxLeg, "$unicode", "привет 😀")
		e.sendFromMatrix(mxLeg2, "$long", strings.Repeat("word ", 700))
		// An MMS: MediaUrl (an array in Twilio's spec, a string in the
		// Prism copy) with a caption.
		e.sendMediaFromMatrix(mxLeg, "$mms", "a picture", &bridge.Media{Ref: "mxc://example.org/pic", MimeType: "image/jpeg", Size: 4}, []byte("jpeg"))
		for _, id := range []string{"$text", "$unicode", "$long", "$mms"} {
			waitDelivered(t, e, id)
		}
		log := mock.Log()
		assert.NotContains(t, log, "did not pass the validation rules", "Prism reported a violation")
		// hello, unicode, the long body in 3 parts and the MMS (6 requests).
		assert.Equal(t, 6, strings.Count(log, "post /2010-04-01/Accounts/"+accountSID+"/Messages.json ℹ  info      Request received"), "the requests went to the mock")
		assert.Equal(t, 6, strings.Count(log, "The request passed the validation rules"))
		assert.Contains(t, e.logs.String(), `"message":"Sent MMS"`, "the MMS request (with MediaUrl) was answered 201 with a MessageSid")
	})

	t.Run("malformed rejected", func(t *testing.T) {
		e := &env{t: t, logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry()}
		e.start(mock.URL, func(c *config.Config) { c.SMS.Twilio.AccountSID = "ACnotavalidsid" })
		_, mxLeg, _ := e.conversation(contactA, "!room1")
		e.sendFromMatrix(mxLeg, "$bad", "hello")
		st, ok := e.mx.WaitStatus(10*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$bad" })
		require.True(t, ok)
		require.Equal(t, bridge.StateFailed, st.State)
		var te *sms.TwilioError
		require.ErrorAs(t, st.Err, &te)
		assert.Equal(t, http.StatusUnprocessableEntity, te.Status)
		assert.ErrorIs(t, st.Err, bridge.ErrPermanent)
	})
}

// TestCanaryNoNumberOrBodyAtRest: a contact's number and message bodies in
// both directions never reach the SQLite files or the logs.
func TestCanaryNoNumberOrBodyAtRest(t *testing.T) {
	e := newEnv(t)
	const outBody, inBody = "canary-outbound-9f2c71", "canary-inbound-4be0d3"
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	e.sendFromMatrix(mxLeg, "$1", outBody)
	e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$1")
	f := inbound(sid(1), contactA, pool1, inBody)
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	stop := inbound(sid(2), contactA, pool1, "STOP")
	require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", stop, sign("/sms/twilio/incoming", stop)).Code)
	e.mx.WaitSent(2, 5*time.Second)
	cb := f
	cb.Set("MessageSid", "SM00000000000000000000000000000001")
	cb.Set("MessageStatus", "failed")
	cb.Set("ErrorCode", "30003")
	e.post("/sms/twilio/status", cb, sign("/sms/twilio/status", cb))
	e.post("/sms/twilio/incoming", f, "forged")
	e.sendFromMatrix(mxLeg, "$2", outBody) // refused: opted out
	_, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$2" })
	require.True(t, ok)
	require.NoError(t, e.router.Stop(context.Background()))

	var files []byte
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(e.dbPath + suffix)
		if err == nil {
			files = append(files, data...)
		}
	}
	require.NotEmpty(t, files)
	logs := e.logs.String()
	require.NotEmpty(t, logs)
	for _, secret := range []string{contactA, "4155550100", pool1, "4155550101", outBody, inBody} {
		assert.NotContains(t, string(files), secret, "database holds %q", secret)
		assert.NotContains(t, logs, secret, "logs hold %q", secret)
	}
}
