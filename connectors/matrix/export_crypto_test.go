package matrix

import "time"

// SetKeyDeadlineForTest sets how long a kept encrypted event waits for its
// room key before its sender is told (a minute by default).
func SetKeyDeadlineForTest(c *Connector, d time.Duration) { c.cs.keyDeadline.Store(int64(d)) }

// MaxUndecryptedPerRoom is how many encrypted events one room may have
// waiting for their keys.
const MaxUndecryptedPerRoom = maxUndecryptedPerRoom
