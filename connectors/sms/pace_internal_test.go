package sms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// TestPacerOnFakeClock: each pool number sends one segment per interval;
// a delivery that must wait gets a slot and keeps it (asked again before
// it, it waits the rest; at or after it, it goes), and multi-segment
// messages take as many slots as segments.
func TestPacerOnFakeClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := Pacing{
		SegmentInterval: time.Second,
		NumberIntervals: map[string]time.Duration{"+18005550100": 100 * time.Millisecond},
	}
	p := newPacer(cfg, map[string]string{"long": "+14155550101", "tollfree": "+18005550100"})
	type step struct {
		at       time.Duration
		pool     string
		id       bridge.DeliveryID
		segments int
		wait     time.Duration
	}
	for i, s := range []step{
		{0, "long", "d1", 1, 0},
		{0, "long", "d2", 1, time.Second},
		{0, "long", "d3", 3, 2 * time.Second},
		{0, "long", "d4", 1, 5 * time.Second}, // after d3's three segments
		{0, "tollfree", "t1", 1, 0},           // its own pace
		{0, "tollfree", "t2", 1, 100 * time.Millisecond},
		{500 * time.Millisecond, "long", "d2", 1, 500 * time.Millisecond}, // d2 keeps its slot
		{time.Second, "long", "d2", 1, 0},
		{time.Second, "long", "d2", 1, 5 * time.Second}, // slot used: a retry (after a transient error) queues anew, after d4
		{2 * time.Second, "long", "d3", 3, 0},
		{5 * time.Second, "long", "d4", 1, 0},
	} {
		got := p.wait(s.pool, s.id, s.segments, t0.Add(s.at))
		require.InDelta(t, float64(s.wait), float64(got), float64(time.Millisecond), "step %d (%s)", i, s.id)
	}
	unpaced := newPacer(Pacing{}, map[string]string{"long": "+14155550101"})
	for range 100 {
		require.Zero(t, unpaced.wait("long", "x", 10, t0))
	}
	require.True(t, highCost("+882123", []string{"+44", "+882"}))
	require.False(t, highCost("+14155550100", []string{"+44", "+882"}))
}

// TestPacerHold: after a 429 every delivery from that pool number waits
// until the hold ends (also one that had its slot already); other numbers
// are not held; a shorter later hold does not shorten it.
func TestPacerHold(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPacer(Pacing{}, map[string]string{"a": "+14155550101", "b": "+14155550102"})
	require.Zero(t, p.wait("a", "d1", 1, t0), "unpaced number: no wait")
	p.hold("a", t0.Add(3*time.Second))
	p.hold("a", t0.Add(time.Second))
	require.Equal(t, 3*time.Second, p.wait("a", "d1", 1, t0))
	require.Equal(t, 3*time.Second, p.wait("a", "d2", 1, t0))
	require.Zero(t, p.wait("b", "d3", 1, t0), "another number is not held")
	require.Equal(t, time.Second, p.wait("a", "d1", 1, t0.Add(2*time.Second)))
	require.Zero(t, p.wait("a", "d1", 1, t0.Add(3*time.Second)))
	require.Zero(t, p.wait("a", "d2", 1, t0.Add(3*time.Second)))

	paced := newPacer(Pacing{SegmentInterval: time.Second}, map[string]string{"a": "+14155550101"})
	require.Zero(t, paced.wait("a", "d1", 1, t0))
	require.Equal(t, time.Second, paced.wait("a", "d2", 1, t0), "d2 gets the slot at 1s")
	paced.hold("a", t0.Add(5*time.Second))
	require.Equal(t, 4*time.Second, paced.wait("a", "d2", 1, t0.Add(time.Second)), "its slot came, but the number is held")
	require.Zero(t, paced.wait("a", "d2", 1, t0.Add(5*time.Second)))
}

// TestPacerLateSlot: a delivery whose worker comes back late for its slot
// still leaves a full interval before the next slot's holder sends (on a
// loaded host the two went out a millisecond apart).
func TestPacerLateSlot(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPacer(Pacing{SegmentInterval: 100 * time.Millisecond}, map[string]string{"long": "+14155550101"})
	for i, s := range []struct {
		at   time.Duration
		id   bridge.DeliveryID
		wait time.Duration
	}{
		{0, "d1", 0},
		{0, "d2", 100 * time.Millisecond},
		{0, "d3", 200 * time.Millisecond},
		{190 * time.Millisecond, "d2", 0},                     // 90 ms late for its slot
		{200 * time.Millisecond, "d3", 90 * time.Millisecond}, // its slot, but d2 just went
		{250 * time.Millisecond, "d3", 40 * time.Millisecond}, // keeps the moved slot
		{290 * time.Millisecond, "d3", 0},
	} {
		got := p.wait("long", s.id, 1, t0.Add(s.at))
		require.InDelta(t, float64(s.wait), float64(got), float64(time.Millisecond), "step %d (%s at %s)", i, s.id, s.at)
	}
}
