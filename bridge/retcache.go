package bridge

import (
	"context"
	"sync"
	"time"
)

// maxRetentionCache bounds the conversations whose retention input is
// kept; a full cache starts over.
const maxRetentionCache = 10000

// retentionCache keeps, per conversation, what its retention depends on
// besides its legs (the conversation setting and the legs' chat timers),
// so an accepted message does not read them again. It is used only when
// this process is the database's one writer (SQLite): a setting another
// process changes would not reach it.
//
// Every change made through the router forgets entries after its commit
// (forget); an entry read before a change is not stored (gen). Reads run
// in the writer's transaction, which on SQLite holds the write lock from
// its start (_txlock=immediate), so a change commits entirely before or
// after it.
type retentionCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[ConversationID]retentionEntry
}

type retentionEntry struct {
	setting ConversationSetting
	timers  map[Leg]time.Duration
}

// forget drops conv's entry, or every entry when conv is "".
func (c *retentionCache) forget(conv ConversationID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if conv == "" {
		c.m = nil
		return
	}
	delete(c.m, conv)
}

// cachedRetentionInput is retentionInput from memory when it can be.
func (r *Router) cachedRetentionInput(ctx context.Context, conv ConversationID, legs []Leg) (RetentionInput, error) {
	if r.disp.multiProcess {
		return r.retentionInput(ctx, conv, legs)
	}
	c := &r.retCache
	c.mu.Lock()
	e, ok := c.m[conv]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return RetentionInput{Legs: legs, Setting: e.setting, LegTimers: e.timers}, nil
	}
	in, err := r.retentionInput(ctx, conv, legs)
	if err != nil {
		return in, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		if c.m == nil || len(c.m) >= maxRetentionCache {
			c.m = make(map[ConversationID]retentionEntry)
		}
		c.m[conv] = retentionEntry{setting: in.Setting, timers: in.LegTimers}
	}
	return in, nil
}
