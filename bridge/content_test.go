package bridge_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Locations, polls and votes read as text on networks without them, and
// are refused without the fields they need.
func TestRichContent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content bridge.Content
		replyTo bridge.RemoteID
		text    string
		invalid bool
	}{
		{name: "location", content: bridge.Content{Type: bridge.MsgLocation, Location: &bridge.Location{Lat: -33.8568, Long: 151.2153, Name: "Opera House"}},
			text: "Location: Opera House (geo:-33.856800,151.215300)"},
		{name: "live location", content: bridge.Content{Type: bridge.MsgLocation, Location: &bridge.Location{Lat: 1, Long: 2, Live: true}},
			text: "Live location (last known position; open WhatsApp to follow it): geo:1.000000,2.000000"},
		{name: "poll", content: bridge.Content{Type: bridge.MsgPoll, Poll: &bridge.Poll{Question: "Q?", Options: []string{"a", "b"}, MaxSelections: 1}},
			text: "Poll: Q?\n1. a\n2. b"},
		{name: "vote", content: bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{0, 2}}}, replyTo: "$p",
			text: "Voted for options 1, 3"},
		{name: "withdrawn vote", content: bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{}}, replyTo: "$p",
			text: "Withdrew their poll vote"},
		{name: "plain text", content: bridge.Content{Type: bridge.MsgText, Body: "hi"}, text: "hi"},
		{name: "location without one", content: bridge.Content{Type: bridge.MsgLocation, Body: "x"}, text: "x", invalid: true},
		{name: "poll without options", content: bridge.Content{Type: bridge.MsgPoll, Poll: &bridge.Poll{Question: "Q?"}}, invalid: true},
		{name: "vote without a poll", content: bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{1}}}, invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.text != "" {
				assert.Equal(t, tc.text, tc.content.PlainText())
			}
			evt := &bridge.Event{Kind: bridge.KindMessage, Source: bridge.Leg{Network: "n", Chat: "c"}, SourceID: "s", ReplyTo: tc.replyTo, Content: &tc.content}
			err := evt.Validate()
			assert.Equal(t, tc.invalid, errors.Is(err, bridge.ErrInvalidEvent), "%v", err)
		})
	}
}
