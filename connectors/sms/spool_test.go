package sms_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// breakDatabase makes the SMS connector's queries fail as they do when the
// database is unavailable (its chat table is gone), and returns the repair.
func breakDatabase(t *testing.T, e *env) (repair func()) {
	t.Helper()
	ctx := context.Background()
	_, err := e.db.Exec(ctx, `ALTER TABLE sb_sms_chat RENAME TO sb_sms_chat_unavailable`)
	require.NoError(t, err)
	return func() {
		_, err := e.db.Exec(ctx, `ALTER TABLE sb_sms_chat_unavailable RENAME TO sb_sms_chat`)
		require.NoError(t, err)
	}
}

// TestSpoolKeepsInboundWhileDatabaseDown: Twilio does not retry a webhook
// answered 503, so while the database is unavailable inbound SMS are kept
// in a sealed spool (answered 200) and delivered, in order and once, when
// it is back.
func TestSpoolKeepsInboundWhileDatabaseDown(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			spoolPath := filepath.Join(t.TempDir(), "sms-spool")
			e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix),
				reg: prometheus.NewRegistry(), postgres: backend == "postgres", spoolPath: spoolPath}
			e.start(e.twilio.srv.URL)
			ctx := context.Background()
			_, mxLeg, _ := e.conversation(contactA, "!room1")
			repair := breakDatabase(t, e)

			bodies := []string{"first canary-spool-4f1e", "second canary-spool-4f1e", "third canary-spool-4f1e", "STOP"}
			forms := make([]string, len(bodies))
			for i, body := range bodies {
				f := inbound(sid(i+1), contactA, pool1, body)
				forms[i] = f.Encode()
				rec := e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f))
				require.Equal(t, http.StatusOK, rec.Code, "kept, not refused: Twilio would not retry a 503")
				assert.Contains(t, rec.Body.String(), "<Response/>")
				tick()
			}
			assert.Equal(t, bridge.HealthDegraded, e.sms.Health(ctx).State)
			time.Sleep(settle)
			assert.Empty(t, e.mx.Sent(), "nothing delivered while the database is down")

			// The spool holds no body and no number in plaintext.
			data, err := os.ReadFile(spoolPath + ".replay")
			if os.IsNotExist(err) {
				data, err = os.ReadFile(spoolPath)
			}
			require.NoError(t, err)
			require.NotEmpty(t, data)
			for _, secret := range []string{"canary-spool", contactA, "4155550100", sid(1)} {
				assert.NotContains(t, string(data), secret)
			}
			st, err := os.Stat(spoolPath + ".lock")
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

			repair()
			sent := e.mx.WaitSent(4, 10*time.Second)
			require.Len(t, sent, 4)
			for i, body := range bodies[:3] {
				assert.Equal(t, body, sent[i].Delivery.Event.Content.Body, "in the order they came")
				assert.Equal(t, mxLeg.Chat, sent[i].Chat)
			}
			assert.Contains(t, sent[3].Delivery.Event.Content.Body, "opted out", "the spooled STOP applied")
			require.Eventually(t, func() bool { return e.sms.Health(ctx).State == bridge.HealthOK }, 5*time.Second, 20*time.Millisecond)
			for _, suffix := range []string{"", ".replay"} {
				_, err := os.Stat(spoolPath + suffix)
				assert.True(t, os.IsNotExist(err), "spool%s removed once replayed", suffix)
			}

			// Twilio (or anyone) sending one of them again changes nothing.
			for i := range forms {
				f := inbound(sid(i+1), contactA, pool1, bodies[i])
				require.Equal(t, http.StatusOK, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
			}
			time.Sleep(settle)
			assert.Len(t, e.mx.Sent(), 4, "delivered once")
			assert.NotContains(t, e.logs.String(), "canary-spool")
			assert.Equal(t, 4.0, counter(t, e, "sb_sms_messages_total", "result", "spooled"))
			assert.Equal(t, 4.0, counter(t, e, "sb_sms_messages_total", "result", "replayed"))
		})
	}
}

// TestSpoolDisabledAnswers503: without a spool, a webhook that cannot be
// accepted is answered 503 (and Twilio drops it).
func TestSpoolDisabledAnswers503(t *testing.T) {
	e := newEnv(t)
	e.conversation(contactA, "!room1")
	breakDatabase(t, e)
	f := inbound(sid(1), contactA, pool1, "lost")
	assert.Equal(t, http.StatusServiceUnavailable, e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f)).Code)
	assert.True(t, strings.Contains(e.logs.String(), "Failed to accept inbound SMS"))
}
