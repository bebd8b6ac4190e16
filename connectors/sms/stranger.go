package sms

import (
	"context"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// strangerText answers a contact whose message reaches nobody on the
// bridge (nobody has a conversation with them on that pool number).
const strangerText = "Automatic reply: this number relays conversations that people on a Matrix bridge start. " +
	"Nobody there has a conversation with you on this number, so your message was not delivered, and it was not kept."

// strangerReplyInterval is how often a stranger may get strangerText.
const strangerReplyInterval = time.Hour

// maxTold bounds the memory of strangers told.
const maxTold = 10000

// stranger handles a message that reaches nobody: the admins are told
// through Hooks.OnStranger (pseudonym only), and the contact gets
// strangerText at most once an hour per pool number, unless they opted
// out. It returns the reply ("" for none). Nothing of the message is kept.
func (c *Connector) stranger(ctx context.Context, from, contactHash, poolHash string) string {
	if c.hooks.OnStranger != nil {
		id, name := c.keys.pseudonym(from)
		c.hooks.OnStranger(ctx, bridge.Sender{ID: bridge.UserID(id), DisplayName: name}, c.pool[poolHash])
	}
	if out, err := c.optedOut(ctx, contactHash); err != nil || out {
		return ""
	}
	key, now := contactHash+" "+poolHash, c.now()
	c.toldMu.Lock()
	defer c.toldMu.Unlock()
	if at, ok := c.told[key]; ok && now.Sub(at) < strangerReplyInterval {
		return ""
	}
	if c.told == nil || len(c.told) >= maxTold {
		c.told = make(map[string]time.Time)
	}
	c.told[key] = now
	c.metrics.messages.WithLabelValues("out", "auto_reply").Inc()
	return strangerText
}
