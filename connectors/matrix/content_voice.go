package matrix

import (
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Voice messages. WhatsApp voice notes are Ogg Opus, which is what Element
// records and plays on every platform (Web, Desktop, Android, iOS and
// Element X), so they cross unconverted: an m.audio message with the
// MSC3245 voice marker and the MSC1767 audio block (duration in ms,
// waveform of 0–1024 samples) that Element draws.

// matrixWaveformMax is the largest sample of an MSC1767 waveform.
const matrixWaveformMax = 1024

// voiceAudio is the MSC1767 audio block of a voice message.
func voiceAudio(media *bridge.Media) *event.MSC1767Audio {
	a := &event.MSC1767Audio{Duration: int(media.Duration / time.Millisecond)}
	if len(media.Waveform) > 0 {
		a.Waveform = make([]int, len(media.Waveform))
		for i, v := range media.Waveform {
			a.Waveform[i] = int(v) * matrixWaveformMax / 255
		}
	}
	return a
}

// waveformFromMatrix scales an MSC1767 waveform to the bridge's 0–255.
func waveformFromMatrix(a *event.MSC1767Audio) []byte {
	if a == nil || len(a.Waveform) == 0 {
		return nil
	}
	out := make([]byte, len(a.Waveform))
	for i, v := range a.Waveform {
		out[i] = byte(min(max(v, 0), matrixWaveformMax) * 255 / matrixWaveformMax)
	}
	return out
}
