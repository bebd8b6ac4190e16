package sms_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

// TestSendGroupPrefixFollowsLegs: the sender's name goes with an SMS once
// a third leg makes the conversation a group, and stops when it leaves,
// although whether it is a group is asked once per change, not per SMS.
func TestSendGroupPrefixFollowsLegs(t *testing.T) {
	e := newEnv(t)
	var asked atomic.Int32
	e.sms.SetHooks(sms.Hooks{IsGroup: func(ctx context.Context, conv bridge.ConversationID) bool {
		asked.Add(1)
		legs, err := e.router.Legs(ctx, conv)
		return err == nil && len(legs) > 2
	}})
	conv, mxLeg, _ := e.conversation(contactA, "!room1")
	ctx := context.Background()
	third := bridge.Leg{Network: netMatrix, Chat: "!room-guest"}

	for i, step := range []struct {
		id, body, want string
		change         func()
	}{
		{id: "$1", body: "one", want: "one"},
		{id: "$2", body: "two", want: "two"},
		{id: "$3", body: "three", want: "Alice: three", change: func() { assert.NoError(t, e.router.AddLeg(ctx, conv, third)) }},
		{id: "$4", body: "four", want: "Alice: four"},
		{id: "$5", body: "five", want: "five", change: func() { assert.NoError(t, e.router.RemoveLeg(ctx, third)) }},
	} {
		if step.change != nil {
			step.change()
		}
		e.sendFromMatrix(mxLeg, step.id, step.body)
		reqs := e.twilio.waitRequests(t, i+1)
		assert.Equal(t, step.want, reqs[i].Get("Body"), step.id)
		waitDelivered(t, e, step.id)
	}
	assert.Equal(t, int32(3), asked.Load(), "asked once for the conversation, again after each change")
}
