package daemon

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Returning freed heap to the OS once the daemon goes quiet (issue 16).
// After start-up, or after a burst of traffic, the heap holds garbage and
// free pages that the runtime gives back only slowly: no collection runs
// until allocation resumes or sysmon forces one (every two minutes), and
// the background scavenger then returns what exceeds the heap goal bit by
// bit. An idle bridge should not sit on a burst's high-water mark, so when
// a check window saw almost no allocation and enough was allocated since
// the last trim for it to matter, trimWhenQuiet runs debug.FreeOSMemory
// once (a collection and a full scavenge: what the runtime would do
// anyway, only sooner). It trims again only after the next burst.
const (
	// trimCheckEvery is the window in which allocation is measured.
	trimCheckEvery = 2 * time.Second
	// trimQuietBytes is the most a window may allocate and still count as
	// quiet: an idle daemon allocates about 10 KB/s (health checks, WAL
	// checkpoints, metrics), traffic several MB/s.
	trimQuietBytes = 128 << 10
	// trimMinAllocated is how much must have been allocated since the last
	// trim for another to be worth a collection: a trickle of messages
	// does not trim after each one.
	trimMinAllocated = 4 << 20
)

// heapAllocsMetric is the runtime's cumulative count of bytes allocated on
// the heap.
const heapAllocsMetric = "/gc/heap/allocs:bytes"

// trimWhenQuiet trims the heap (see above) until ctx ends. The first window
// ends start-up: it trims after it whatever it allocated, start-up's
// garbage being the most there will be at rest.
func trimWhenQuiet(ctx context.Context) {
	t := time.NewTicker(trimCheckEvery)
	defer t.Stop()
	q := quietTrimmer{last: heapAllocated()}
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if q.observe(heapAllocated()) || first {
			debug.FreeOSMemory()
			q.trimmed(heapAllocated())
		}
	}
}

// quietTrimmer decides from successive readings of the cumulative heap
// allocation whether to trim now.
type quietTrimmer struct {
	// last is the total at the end of the previous window, atTrim the
	// total right after the last trim.
	last, atTrim uint64
}

// observe takes the allocation total at the end of a window and reports
// whether to trim: the window was quiet and enough was allocated since the
// last trim.
func (q *quietTrimmer) observe(total uint64) bool {
	window := total - q.last
	q.last = total
	return window <= trimQuietBytes && total-q.atTrim >= trimMinAllocated
}

// trimmed records the allocation total right after a trim.
func (q *quietTrimmer) trimmed(total uint64) {
	q.last, q.atTrim = total, total
}

// heapAllocated reads heapAllocsMetric.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: heapAllocsMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
