package safety

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a set of token buckets, one per key (a person, a
// conversation), each allowing max events per period with a burst of max.
// Time is passed in, so tests drive it with a fake clock.
type limiter struct {
	max    int
	period time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim *rate.Limiter
	// refusedAt is when the key was last refused (for Repeat).
	refusedAt time.Time
	last      time.Time
}

// newLimiter returns nil (no limit) for max <= 0.
func newLimiter(max int, period time.Duration) *limiter {
	if max <= 0 || period <= 0 {
		return nil
	}
	return &limiter{max: max, period: period, buckets: make(map[string]*bucket)}
}

// allow takes one token for key at now. When none is left it returns how
// long until one is, and whether key was already refused within that
// wait (a repeat).
func (l *limiter) allow(key string, now time.Time) (ok bool, wait time.Duration, repeat bool) {
	if l == nil {
		return true, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= 4096 {
			l.pruneLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.period/time.Duration(l.max)), l.max)}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, l.period, true
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		repeat = !b.refusedAt.IsZero() && now.Sub(b.refusedAt) < l.period
		if !repeat {
			b.refusedAt = now
		}
		return false, d, repeat
	}
	return true, 0, false
}

// pruneLocked forgets buckets that have refilled completely.
func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > l.period {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) prune(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pruneLocked(now)
	l.mu.Unlock()
}
