// Package periodic runs a component's background housekeeping (purges,
// prunes) on an interval until the component stops.
package periodic

import (
	"context"
	"time"
)

// Run calls fn every interval, first after one interval, until ctx ends.
// fn gets ctx; it should log its own failures.
func Run(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn(ctx)
		}
	}
}
