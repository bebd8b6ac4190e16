package sms

import "time"

// ExpireMediaTokens makes every outstanding MMS media token expired, as if
// mediaTTL had passed.
func ExpireMediaTokens(c *Connector) {
	c.media.mu.Lock()
	defer c.media.mu.Unlock()
	for _, e := range c.media.entries {
		e.expires = time.Time{}
	}
}

// MediaTokenCount is the number of outstanding MMS media tokens.
func MediaTokenCount(c *Connector) int {
	c.media.mu.Lock()
	defer c.media.mu.Unlock()
	return len(c.media.entries)
}
