package matrix

import (
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// parseGeoURI reads an RFC 5870 geo URI ("geo:lat,long[,alt][;params]");
// ok is false when it is not one.
func parseGeoURI(uri string) (lat, long float64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(uri), "geo:")
	if !found {
		return 0, 0, false
	}
	rest, _, _ = strings.Cut(rest, ";")
	rest, _, _ = strings.Cut(rest, "?")
	parts := strings.Split(rest, ",")
	if len(parts) < 2 {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	long, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || long < -180 || long > 180 {
		return 0, 0, false
	}
	return lat, long, true
}

// locationFromMatrix fills out from an m.location message; it leaves out
// as it is (text) when the geo URI does not parse.
func locationFromMatrix(out *bridge.Content, content *event.MessageEventContent) {
	lat, long, ok := parseGeoURI(content.GeoURI)
	if !ok {
		return
	}
	loc := &bridge.Location{Lat: lat, Long: long}
	// Element's body is "Location geo:…" or the sender's description.
	if name := strings.TrimSpace(content.Body); name != "" && !strings.Contains(name, "geo:") {
		loc.Name = name
	}
	out.Type, out.HTML, out.Location = bridge.MsgLocation, "", loc
	out.Body = out.PlainText()
}

// locationToMatrix is the m.location message for a location.
func locationToMatrix(in *bridge.Content) *event.MessageEventContent {
	return &event.MessageEventContent{
		MsgType:  event.MsgLocation,
		Body:     in.Location.Text(),
		GeoURI:   in.Location.GeoURI(),
		Mentions: &event.Mentions{},
	}
}
