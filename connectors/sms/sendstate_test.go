package sms_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// backends are the databases the send-state tests run on (PostgreSQL
// skipped unless SWITCHBOARD_TEST_POSTGRES is set).
var backends = []struct {
	name     string
	postgres bool
}{{"sqlite", false}, {"postgres", true}}

func newEnvOn(t *testing.T, postgres bool) *env {
	e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), postgres: postgres}
	return e.start(e.twilio.srv.URL)
}

// TestOptOutFollowsEveryWrite: once a send has read a contact's opt-out
// (cached on SQLite), every way the opt-out changes is seen by the next
// send: STOP refuses it without calling Twilio, START allows it again, and
// so do Twilio's 21610 in a status callback and in its answer to a send.
func TestOptOutFollowsEveryWrite(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnvOn(t, be.postgres)
			_, mxLeg, _ := e.conversation(contactA, "!room1")
			n := 0
			keyword := func(body string) {
				t.Helper()
				n++
				tick() // the newest keyword wins, by the millisecond
				f := inbound(sid(n), contactA, pool1, body)
				require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
			}
			outcome := func(id string) error {
				t.Helper()
				st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
					return string(r.SourceID) == id && r.State != bridge.StateRetrying
				})
				require.True(t, ok)
				return st.Err
			}
			refused := func(id string, requests int) {
				t.Helper()
				e.sendFromMatrix(mxLeg, id, "refused "+id)
				err := outcome(id)
				require.ErrorIs(t, err, sms.ErrOptedOut)
				require.ErrorIs(t, err, bridge.ErrPermanent)
				assert.Len(t, e.twilio.Requests(), requests, "nothing more reached Twilio")
			}
			sent := func(id string, requests int) {
				t.Helper()
				e.sendFromMatrix(mxLeg, id, "sent "+id)
				require.NoError(t, outcome(id))
				reqs := e.twilio.Requests()
				require.Len(t, reqs, requests)
				assert.Equal(t, "sent "+id, reqs[requests-1].Get("Body"))
			}

			sent("$1", 1) // the contact's opt-out is now known (false)
			keyword("STOP")
			refused("$2", 1)
			keyword("START")
			sent("$3", 2)

			// A status callback reporting 21610 for the message just sent.
			tick()
			cb := url.Values{
				"MessageSid": {fmt.Sprintf("SM%032x", 2)}, "AccountSid": {accountSID}, "From": {pool1}, "To": {contactA},
				"MessageStatus": {"failed"}, "ErrorCode": {"21610"},
			}
			require.Equal(t, http.StatusNoContent, e.post("/sms/twilio/status", cb, sign("/sms/twilio/status", cb)).Code)
			refused("$4", 2)
			keyword("START")
			sent("$5", 3)

			// Twilio refusing a send with 21610.
			e.twilio.failOnly(3, http.StatusBadRequest, `{"code":21610,"status":400,"message":"Attempt to send to unsubscribed recipient"}`)
			e.sendFromMatrix(mxLeg, "$6", "refused by Twilio")
			require.ErrorIs(t, outcome("$6"), sms.ErrOptedOut)
			refused("$7", 4)
			keyword("START")
			sent("$8", 5)

			out, err := sms.OptedOut(context.Background(), e.sms, contactA)
			require.NoError(t, err)
			assert.False(t, out)
		})
	}
}

// handDelivery is a delivery of body to chat with a router-like numeric
// ID, always presented as attempt 1.
func handDelivery(id int, chat bridge.ChatID, body string) *bridge.Delivery {
	return &bridge.Delivery{
		ID: bridge.DeliveryID(fmt.Sprint(id)), Conversation: "conv", Message: bridge.MessageID(fmt.Sprint("msg-", id)),
		Chat: chat, Attempt: 1,
		Event: &bridge.Event{
			Kind: bridge.KindMessage, Source: bridge.Leg{Network: netMatrix, Chat: "!room1"},
			SourceID: bridge.RemoteID(fmt.Sprint("$", id)), Sender: bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"},
			Content: &bridge.Content{Type: bridge.MsgText, Body: body},
		},
	}
}

// TestPartsNotSentAgainAtAttemptOne: the parts an attempt had Twilio
// accept are not sent again even when the next attempt comes as attempt 1
// (a delivery reloaded after a crash or a shutdown during its first
// attempt), in the same process and after a restart on the same database.
func TestPartsNotSentAgainAtAttemptOne(t *testing.T) {
	ctx := context.Background()
	body := strings.Repeat("lorem ipsum ", 300) // 3 parts
	parts := sms.SplitBody(body, sms.MaxBodyLength)
	require.Len(t, parts, 3)
	fail500 := `{"code":20500,"status":500,"message":"oops"}`

	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnvOn(t, be.postgres)
			_, _, smsLeg := e.conversation(contactA, "!room1")
			e.twilio.failOnly(1, http.StatusInternalServerError, fail500)
			_, err := e.sms.SendMessage(ctx, handDelivery(7, smsLeg.Chat, body))
			require.Error(t, err)
			require.NotErrorIs(t, err, bridge.ErrPermanent)
			e.twilio.fail(0, "")
			remote, err := e.sms.SendMessage(ctx, handDelivery(7, smsLeg.Chat, body))
			require.NoError(t, err)
			assert.Equal(t, bridge.RemoteID(fmt.Sprintf("SM%032x", 1)), remote, "the first part's sid")
			var got []string
			for _, r := range e.twilio.Requests() {
				got = append(got, r.Get("Body"))
			}
			assert.Equal(t, []string{parts[0], parts[1], parts[1], parts[2]}, got)
		})
	}

	t.Run("after a restart", func(t *testing.T) {
		e := newEnvOn(t, false)
		_, _, smsLeg := e.conversation(contactA, "!room1")
		e.twilio.failOnly(1, http.StatusInternalServerError, fail500)
		_, err := e.sms.SendMessage(ctx, handDelivery(8, smsLeg.Chat, body))
		require.Error(t, err)
		require.NoError(t, e.router.Stop(ctx))

		e2 := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry(), dbFile: e.dbPath}
		e2.twilio.n = 100 // sids unlike the first fake's
		e2.start(e2.twilio.srv.URL)
		remote, err := e2.sms.SendMessage(ctx, handDelivery(8, smsLeg.Chat, body))
		require.NoError(t, err)
		assert.Equal(t, bridge.RemoteID(fmt.Sprintf("SM%032x", 1)), remote, "the first part's sid, sent before the restart")
		reqs := e2.twilio.Requests()
		require.Len(t, reqs, 2)
		assert.Equal(t, parts[1], reqs[0].Get("Body"))
		assert.Equal(t, parts[2], reqs[1].Get("Body"))

		// A later delivery is sent whole.
		_, err = e2.sms.SendMessage(ctx, handDelivery(9, smsLeg.Chat, body))
		require.NoError(t, err)
		assert.Len(t, e2.twilio.Requests(), 5)
	})
}
