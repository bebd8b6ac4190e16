package safety

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLimiterOnFakeClock: max per period per key, refilled over time; the
// second refusal in a burst is a repeat.
func TestLimiterOnFakeClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at     time.Duration
		key    string
		ok     bool
		wait   time.Duration
		repeat bool
	}
	for _, tc := range []struct {
		name  string
		max   int
		per   time.Duration
		steps []step
	}{
		{"three per minute, then one every 20s", 3, time.Minute, []step{
			{0, "a", true, 0, false},
			{0, "a", true, 0, false},
			{time.Second, "a", true, 0, false},
			{2 * time.Second, "a", false, 18 * time.Second, false},
			{3 * time.Second, "a", false, 17 * time.Second, true},
			{3 * time.Second, "b", true, 0, false}, // keys are independent
			{20 * time.Second, "a", true, 0, false},
			{21 * time.Second, "a", false, 19 * time.Second, true},
			{2 * time.Minute, "a", true, 0, false},
		}},
		{"one per hour", 1, time.Hour, []step{
			{0, "x", true, 0, false},
			{30 * time.Minute, "x", false, 30 * time.Minute, false},
			{time.Hour, "x", true, 0, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.max, tc.per)
			for i, s := range tc.steps {
				ok, wait, repeat := l.allow(s.key, t0.Add(s.at))
				require.Equal(t, s.ok, ok, "step %d", i)
				require.InDelta(t, float64(s.wait), float64(wait), float64(time.Millisecond), "step %d", i)
				require.Equal(t, s.repeat, repeat, "step %d", i)
			}
		})
	}
	var none *limiter = newLimiter(0, time.Minute)
	ok, _, _ := none.allow("a", t0)
	require.True(t, ok, "0 means no limit")
}
