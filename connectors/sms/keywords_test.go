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
)

// TestKeywordReplayDoesNotUndoLaterStop: a signed webhook stays valid
// forever, so a START replayed (same MessageSid, same signature) after a
// later STOP must change nothing: keywords act after the MessageSid
// dedupe.
func TestKeywordReplayDoesNotUndoLaterStop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	post := func(sidN int, body string) {
		t.Helper()
		f := inbound(sid(sidN), contactA, pool1, body)
		rec := e.post("/sms/twilio/incoming", f, sign("/sms/twilio/incoming", f))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	optedOut := func() bool {
		t.Helper()
		out, err := sms.OptedOut(ctx, e.sms, contactA)
		require.NoError(t, err)
		return out
	}

	for _, step := range []struct {
		sid      int
		body     string
		wantOut  bool
		notices  int
		scenario string
	}{
		{1, "STOP", true, 1, "STOP opts out"},
		{2, "START", false, 2, "START opts in again"},
		{3, "stop", true, 3, "a later STOP opts out"},
		{2, "START", true, 3, "the earlier START replayed: nothing changes, nobody is told"},
		{1, "STOP", true, 3, "the first STOP replayed: nothing is told again"},
	} {
		post(step.sid, step.body)
		tick()
		assert.Equal(t, step.wantOut, optedOut(), step.scenario)
		time.Sleep(50 * time.Millisecond)
		assert.Len(t, e.mx.WaitSent(step.notices, 2*time.Second), step.notices, step.scenario)
	}
	time.Sleep(settle)
	assert.Len(t, e.mx.Sent(), 3)

	e.sendFromMatrix(mxLeg, "$after", "still there?")
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
		return r.SourceID == "$after" && r.State != bridge.StateRetrying
	})
	require.True(t, ok)
	assert.ErrorIs(t, st.Err, sms.ErrOptedOut, "the replayed START did not undo the STOP")
	assert.Empty(t, e.twilio.Requests())
}

// TestKeywordNewestWins: a keyword received earlier than the one in force
// (a webhook kept in the spool and handled late) does not override it,
// and tells nobody.
func TestKeywordNewestWins(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.conversation(contactA, "!room1")
	t0 := time.Now()

	for _, step := range []struct {
		sid      int
		body     string
		at       time.Time
		wantOut  bool
		notices  int
		scenario string
	}{
		{1, "STOP", t0.Add(2 * time.Second), true, 1, "STOP received at t0+2s"},
		{2, "START", t0.Add(time.Second), true, 1, "START received at t0+1s is older: ignored"},
		{3, "HELP", t0, true, 1, "HELP older still: ignored"},
		{4, "START", t0.Add(3 * time.Second), false, 2, "START received at t0+3s wins"},
		{5, "STOP", t0.Add(3 * time.Second), true, 3, "same millisecond: the one handled last wins"},
	} {
		reply, err := sms.ProcessIncomingAt(ctx, e.sms, inbound(sid(step.sid), contactA, pool1, step.body), step.at)
		require.NoError(t, err, step.scenario)
		assert.Empty(t, reply)
		out, err := sms.OptedOut(ctx, e.sms, contactA)
		require.NoError(t, err)
		assert.Equal(t, step.wantOut, out, step.scenario)
		assert.Len(t, e.mx.WaitSent(step.notices, 2*time.Second), step.notices, step.scenario)
	}
	time.Sleep(settle)
	assert.Len(t, e.mx.Sent(), 3)
}
