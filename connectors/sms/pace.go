package sms

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// pacer paces sends per pool number to what the number's type allows
// (safety.sms_segment_interval, safety.sms_number_intervals): a long code
// sends about one segment a second. A delivery that would go out too
// early gets a slot and is handed back to the router with bridge.Paced, so
// it waits in the durable queue — never dropped, never counted as a
// failed attempt — and is sent when its slot comes.
type pacer struct {
	mu       sync.Mutex
	interval map[string]time.Duration // pool hash -> interval (0: no pacing)
	limiters map[string]*rate.Limiter
	// slots are the times reserved for deliveries already paced once.
	slots map[bridge.DeliveryID]time.Time
	// holds are pool numbers Twilio throttled (429), until when.
	holds map[string]time.Time
	// next is, per pool number, when its next send may start: the last
	// send's start plus its segments' intervals. A delivery whose worker
	// came back late for its slot would otherwise go out right before the
	// next slot's holder (two sends a millisecond apart on a loaded host).
	next map[string]time.Time
}

func newPacer(s Pacing, pool map[string]string) *pacer {
	p := &pacer{interval: map[string]time.Duration{}, limiters: map[string]*rate.Limiter{}, slots: map[bridge.DeliveryID]time.Time{}, holds: map[string]time.Time{}, next: map[string]time.Time{}}
	for hash, number := range pool {
		iv := s.SegmentInterval
		if o, ok := s.NumberIntervals[number]; ok {
			iv = o
		}
		p.interval[hash] = iv
		if iv > 0 {
			p.limiters[hash] = rate.NewLimiter(rate.Every(iv), 1)
		}
	}
	return p
}

// wait returns how long delivery id, of segments segments from pool
// number poolHash, must wait before it is sent; 0 means send now. The
// first call reserves the segments' time on the number.
func (p *pacer) wait(poolHash string, id bridge.DeliveryID, segments int, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until, ok := p.holds[poolHash]; ok {
		if d := until.Sub(now); d > 0 {
			return d
		}
		delete(p.holds, poolHash)
	}
	if at, ok := p.slots[id]; ok {
		if d := at.Sub(now); d > 0 {
			return d
		}
		return p.start(poolHash, id, segments, now)
	}
	lim := p.limiters[poolHash]
	if lim == nil {
		return 0
	}
	first := time.Duration(-1)
	for range max(segments, 1) {
		r := lim.ReserveN(now, 1)
		if first < 0 {
			first = r.DelayFrom(now)
		}
	}
	if first <= 0 {
		return p.start(poolHash, id, segments, now)
	}
	if len(p.slots) > 10000 {
		for k, at := range p.slots {
			if now.Sub(at) > time.Hour {
				delete(p.slots, k)
			}
		}
	}
	p.slots[id] = now.Add(first)
	return first
}

// hold keeps every delivery from pool number poolHash waiting until until
// (Twilio answered 429 with that Retry-After). A later hold never shortens
// an earlier one.
// start lets delivery id send now unless the number's previous send is
// not yet a full interval (per segment) behind; then the delivery's slot
// moves to when it is. Called with p.mu held.
func (p *pacer) start(poolHash string, id bridge.DeliveryID, segments int, now time.Time) time.Duration {
	if next := p.next[poolHash]; next.After(now) {
		p.slots[id] = next
		return next.Sub(now)
	}
	delete(p.slots, id)
	p.next[poolHash] = now.Add(time.Duration(max(segments, 1)) * p.interval[poolHash])
	return 0
}

func (p *pacer) hold(poolHash string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until.After(p.holds[poolHash]) {
		p.holds[poolHash] = until
	}
}

// highCost reports whether an E.164 number starts with one of the
// configured high-cost prefixes.
func highCost(e164 string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(e164, p) {
			return true
		}
	}
	return false
}
