package sms_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

// A poll, a vote in it and a location reach an SMS contact as readable
// text (the question and numbered options; the numbers voted for; the
// place and its geo URI), even when the source left the body empty; in a
// group with the sender's name.
func TestRichContentAsText(t *testing.T) {
	e := newEnv(t)
	e.sms.SetHooks(sms.Hooks{IsGroup: func(context.Context, bridge.ConversationID) bool { return true }})
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	for _, evt := range []*bridge.Event{
		{SourceID: "$poll", Content: &bridge.Content{Type: bridge.MsgPoll,
			Poll: &bridge.Poll{Question: "Lunch?", Options: []string{"Soup", "Salad"}, MaxSelections: 2}}},
		{SourceID: "$vote", ReplyTo: "$poll", Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{1}}}},
		{SourceID: "$loc", Content: &bridge.Content{Type: bridge.MsgLocation, Location: &bridge.Location{Lat: 48.8584, Long: 2.2945, Name: "Tower"}}},
	} {
		evt.Kind, evt.Source = bridge.KindMessage, mxLeg
		evt.Sender = bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"}
		require.NoError(t, e.mx.Receive(context.Background(), evt))
	}
	reqs := e.twilio.waitRequests(t, 3)
	assert.Equal(t, "Alice: Poll: Lunch?\n1. Soup\n2. Salad\n(up to 2 choices)", reqs[0].Get("Body"))
	assert.Equal(t, "Alice: Voted for option 2", reqs[1].Get("Body"))
	assert.Equal(t, "Alice: Location: Tower (geo:48.858400,2.294500)", reqs[2].Get("Body"))
}
