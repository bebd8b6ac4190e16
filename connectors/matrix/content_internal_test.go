package matrix

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"

	"github.com/switchboard-bridge/switchboard/bridge"
)

func TestParseGeoURI(t *testing.T) {
	for _, tc := range []struct {
		uri       string
		lat, long float64
		ok        bool
	}{
		{"geo:48.8584,2.2945", 48.8584, 2.2945, true},
		{"geo:48.8584,2.2945;u=35", 48.8584, 2.2945, true},
		{"geo:-33.86,151.21,12.5", -33.86, 151.21, true},
		{" geo:1,2?z=3", 1, 2, true},
		{"geo:91,0", 0, 0, false},
		{"geo:0,181", 0, 0, false},
		{"geo:abc,1", 0, 0, false},
		{"geo:1", 0, 0, false},
		{"https://maps.example/?q=1,2", 0, 0, false},
		{"", 0, 0, false},
	} {
		lat, long, ok := parseGeoURI(tc.uri)
		assert.Equal(t, tc.ok, ok, tc.uri)
		if tc.ok {
			assert.InDelta(t, tc.lat, lat, 1e-9, tc.uri)
			assert.InDelta(t, tc.long, long, 1e-9, tc.uri)
		}
	}
}

func FuzzParseGeoURI(f *testing.F) {
	for _, s := range []string{"geo:48.8584,2.2945", "geo:1,2,3;crs=wgs84;u=1", "geo:", "geo:,", "geo:1e400,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		lat, long, ok := parseGeoURI(uri)
		if ok && (lat < -90 || lat > 90 || long < -180 || long > 180) {
			t.Fatalf("out of range: %v,%v", lat, long)
		}
	})
}

// m.location messages become locations (their body the place's name
// unless it is Element's "Location geo:…" default); one whose geo URI
// does not parse stays text.
func TestLocationFromMatrix(t *testing.T) {
	c := toContent(&event.MessageEventContent{MsgType: event.MsgLocation, Body: "Eiffel Tower", GeoURI: "geo:48.8584,2.2945;u=10"})
	require.Equal(t, bridge.MsgLocation, c.Type)
	require.Equal(t, &bridge.Location{Lat: 48.8584, Long: 2.2945, Name: "Eiffel Tower"}, c.Location)
	require.Equal(t, "Location: Eiffel Tower (geo:48.858400,2.294500)", c.Body)

	c = toContent(&event.MessageEventContent{MsgType: event.MsgLocation, Body: "Location geo:1,2 at 10:00", GeoURI: "geo:1,2"})
	require.Equal(t, "", c.Location.Name)

	c = toContent(&event.MessageEventContent{MsgType: event.MsgLocation, Body: "somewhere", GeoURI: "nowhere"})
	require.Equal(t, bridge.MsgText, c.Type)
	require.Nil(t, c.Location)
	require.Equal(t, "somewhere", c.Body)

	out := locationToMatrix(&bridge.Content{Type: bridge.MsgLocation, Location: &bridge.Location{Lat: 1.5, Long: -2, Live: true}})
	require.Equal(t, event.MsgLocation, out.MsgType)
	require.Equal(t, "geo:1.500000,-2.000000", out.GeoURI)
	require.Contains(t, out.Body, "Live location")
}

// Voice waveforms scale between the bridge's 0–255 and MSC1767's 0–1024
// both ways, and out-of-range Matrix samples are clamped.
func TestVoiceWaveform(t *testing.T) {
	a := voiceAudio(&bridge.Media{Duration: 4200 * time.Millisecond, Waveform: []byte{0, 128, 255}})
	require.Equal(t, 4200, a.Duration)
	require.Equal(t, []int{0, 514, 1024}, a.Waveform)
	require.Nil(t, voiceAudio(&bridge.Media{}).Waveform)
	require.Equal(t, []byte{0, 127, 255, 255, 0}, waveformFromMatrix(&event.MSC1767Audio{Waveform: []int{0, 512, 1024, 5000, -3}}))
	require.Nil(t, waveformFromMatrix(nil))

	c := toContent(&event.MessageEventContent{MsgType: event.MsgAudio, Body: "voice.ogg", URL: "mxc://x/y",
		MSC3245Voice: &event.MSC3245Voice{}, MSC1767Audio: &event.MSC1767Audio{Duration: 3000, Waveform: []int{1024, 0}}})
	require.Equal(t, bridge.MsgVoice, c.Type)
	require.Equal(t, []byte{255, 0}, c.Media.Waveform)
	require.Equal(t, 3*time.Second, c.Media.Duration, "the MSC1767 duration when info has none")
}

// Poll content in the shapes clients send: MSC1767 text, the message
// array, or a plain body.
func TestParsePollContent(t *testing.T) {
	evt := &event.Event{Type: event.EventUnstablePollStart, Content: event.Content{VeryRaw: []byte(`{
		"org.matrix.msc3381.poll.start": {"kind": "org.matrix.msc3381.poll.disclosed", "max_selections": 2,
			"question": {"org.matrix.msc1767.message": [{"mimetype": "text/html", "body": "<b>Q</b>"}, {"body": "Q"}]},
			"answers": [{"id": "a", "org.matrix.msc1767.text": "One"}, {"id": "b", "body": "Two"}]}}`)}}
	pc, ok := parsePollContent(evt)
	require.True(t, ok)
	require.Equal(t, "Q", pc.Start.Question.String())
	require.Equal(t, "One", pc.Start.Answers[0].String())
	require.Equal(t, "Two", pc.Start.Answers[1].String())
	require.Equal(t, "b", pc.Start.Answers[1].ID)
	_, ok = parsePollContent(&event.Event{Content: event.Content{VeryRaw: []byte(`[1]`)}})
	require.False(t, ok)
}
