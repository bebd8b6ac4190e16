package sms

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// groupTTL bounds how long a cached answer of Hooks.IsGroup is used. This
// process forgets it at once when the conversation's legs change here
// (LegsChanged); the bound is for changes another process sharing the
// database makes.
const groupTTL = 30 * time.Second

// maxGroups bounds the cached answers; a full cache starts over.
const maxGroups = 10000

var _ bridge.LegObserver = (*Connector)(nil)

// groupCache caches Hooks.IsGroup per conversation: asked for every SMS
// with a sender's name, it read the conversation's legs each time.
type groupCache struct {
	mu sync.Mutex
	m  map[bridge.ConversationID]groupEntry
	// gen counts invalidations: an answer read before one is not kept.
	gen uint64
}

type groupEntry struct {
	group bool
	until time.Time
}

// isGroup answers Hooks.IsGroup, from memory when it can.
func (c *Connector) isGroup(ctx context.Context, conv bridge.ConversationID) bool {
	if c.hooks.IsGroup == nil {
		return false
	}
	now := c.now()
	g := &c.groups
	g.mu.Lock()
	e, ok := g.m[conv]
	gen := g.gen
	g.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.group
	}
	group := c.hooks.IsGroup(ctx, conv)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen == gen {
		if g.m == nil || len(g.m) >= maxGroups {
			g.m = make(map[bridge.ConversationID]groupEntry)
		}
		g.m[conv] = groupEntry{group: group, until: now.Add(groupTTL)}
	}
	return group
}

// forget drops every cached answer (hooks replaced) or conv's.
func (g *groupCache) forget(conv bridge.ConversationID, all bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	if all {
		g.m = nil
		return
	}
	delete(g.m, conv)
}

// LegsChanged implements bridge.LegObserver: a conversation that gained or
// lost a leg may have become a group or stopped being one.
func (c *Connector) LegsChanged(_ context.Context, conv bridge.ConversationID, _ []bridge.Leg) {
	c.groups.forget(conv, false)
}
