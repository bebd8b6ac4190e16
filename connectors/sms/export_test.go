package sms

import (
	"context"
	"net/url"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

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

// SetNow replaces the connector's clock.
func SetNow(c *Connector, now func() time.Time) { c.now = now }

// OptedOut tells whether a number (E.164) is opted out.
func OptedOut(ctx context.Context, c *Connector, number string) (bool, error) {
	return c.optedOut(ctx, c.keys.contactHash(number))
}

// ProcessIncomingAt handles an inbound webhook's fields as if it had been
// received at received (a webhook kept in the spool), returning the reply.
func ProcessIncomingAt(ctx context.Context, c *Connector, form url.Values, received time.Time) (string, error) {
	f, err := ParseWebhookForm([]byte(form.Encode()))
	if err != nil {
		return "", err
	}
	return c.processIncoming(ctx, f, received)
}

// SendState is what a send of delivery id to chat learns before calling
// Twilio: the contact's opt-out and the parts already sent.
func SendState(ctx context.Context, c *Connector, chat bridge.ChatID, id bridge.DeliveryID) (bool, int, error) {
	row, err := c.openChatFor(ctx, chat)
	if err != nil {
		return false, 0, err
	}
	out, done, err := c.sendState(ctx, row.contactHash, id)
	return out, len(done), err
}
