package bridge_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in      string
		network bridge.NetworkID
		id      string
		ok      bool
	}{
		{"matrix:@alice:example.org", bridge.NetworkMatrix, "@alice:example.org", true},
		{"sms:+15551234567", bridge.NetworkSMS, "+15551234567", true},
		{"whatsapp:+15551234567", bridge.NetworkWhatsApp, "+15551234567", true},
		{"+15551234567", "", "", false},
		{":x", "", "", false},
		{"sms:", "", "", false},
		{"SMS:+1", "", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := bridge.ParseAddress(tc.in)
			if !tc.ok {
				require.ErrorIs(t, err, bridge.ErrInvalidAddress)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.network, a.Network)
			require.Equal(t, tc.id, a.ID)
			require.Equal(t, tc.in, a.String())
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"matrix:@a:b", "sms:+1555", "x", ":", "a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := bridge.ParseAddress(s)
		if err != nil {
			require.ErrorIs(t, err, bridge.ErrInvalidAddress)
			return
		}
		back, err := bridge.ParseAddress(a.String())
		require.NoError(t, err)
		require.Equal(t, a, back)
	})
}

func FuzzEventValidate(f *testing.F) {
	f.Add("message", "room", "$1", "hi", "", "", 0)
	f.Add("edit", "room", "$2", "x", "$1", "", 0)
	f.Add("reaction", "room", "$3", "", "$1", "👍", 0)
	f.Add("poke", "", "", "", "", "", -1)
	f.Fuzz(func(t *testing.T, kind, chat, id, body, target, reaction string, timer int) {
		evt := &bridge.Event{Kind: bridge.Kind(kind), Source: bridge.Leg{Network: "x", Chat: bridge.ChatID(chat)},
			SourceID: bridge.RemoteID(id), Target: bridge.RemoteID(target), Reaction: reaction}
		if body != "" {
			evt.Content = &bridge.Content{Type: bridge.MsgText, Body: body}
		}
		evt.Timer = 0
		if timer < 0 {
			evt.Timer = -1
		}
		if err := evt.Validate(); err != nil {
			require.ErrorIs(t, err, bridge.ErrInvalidEvent)
		}
	})
}
