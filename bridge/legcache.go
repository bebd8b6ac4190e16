package bridge

import (
	"context"
	"database/sql"
	"slices"
	"sync"
)

// maxLegCache bounds the legs whose conversation is kept; a full cache
// starts over.
const maxLegCache = 10000

// legCache keeps, per leg, its conversation and every leg of that
// conversation (membership only: the lease columns of sb_leg change with
// every claim and are never cached), so an accepted message does not read
// them again. It is used only when this process is the database's one
// writer (SQLite): a leg another process adds would not reach it.
//
// Every leg change made through the router brackets its write with begin
// and end: while one is in flight the cache is neither read nor filled,
// and end (after the commit, or the failure) forgets the conversation's
// entries. An entry read before a change is not stored (gen).
//
// Entries are stored only by reads in the writer's transaction (readMany),
// which on SQLite holds the write lock from its start (_txlock=immediate):
// no leg change can be uncommitted while it reads, even one made in a
// caller's own transaction, whose end comes before that transaction's
// commit. Admission, which reads outside any transaction, only uses
// entries.
type legCache struct {
	mu  sync.Mutex
	gen uint64
	// changing counts leg changes between begin and end.
	changing int
	m        map[Leg]*siblings
}

// begin marks a leg change about to be written.
func (c *legCache) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.changing++
}

// end marks a leg change done (committed or failed): conv's entries are
// forgotten (every entry when conv is ""), and so is every entry that
// lists a removed leg.
func (c *legCache) end(conv ConversationID, removed ...Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.changing--
	if conv == "" {
		c.m = nil
		return
	}
	for l, s := range c.m {
		if s.conv == conv || slices.ContainsFunc(removed, func(r Leg) bool { return slices.Contains(s.legs, r) }) {
			delete(c.m, l)
		}
	}
}

// get returns leg's siblings from memory (nil: not cached) and the
// generation to store a read under.
func (c *legCache) get(leg Leg) (*siblings, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changing > 0 {
		return nil, 0, false
	}
	return c.m[leg], c.gen, true
}

// put stores s, read under generation gen, for each of its legs, unless a
// leg change began since.
func (c *legCache) put(s *siblings, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.changing > 0 {
		return
	}
	if c.m == nil || len(c.m)+len(s.legs) > maxLegCache {
		c.m = make(map[Leg]*siblings)
	}
	for _, l := range s.legs {
		c.m[l] = s
	}
}

// legCacheOn says whether the sibling-legs cache may be used: this
// process is the database's one writer.
func (r *Router) legCacheOn() bool { return r.disp != nil && !r.disp.multiProcess }

// cachedSiblings is a source leg's conversation and legs from memory, or
// nil when they are not cached. The entry is shared: callers must not
// modify it.
func (r *Router) cachedSiblings(src Leg) *siblings {
	if !r.legCacheOn() {
		return nil
	}
	s, _, _ := r.legCache.get(src)
	return s
}

// siblingsInTxn reads a source leg's conversation and legs (nil: none)
// inside the writer's transaction, from memory when it can, and keeps
// what it read. stmt binds the prepared siblingLegsQuery to the
// transaction; it is called only on a miss.
func (r *Router) siblingsInTxn(ctx context.Context, stmt func() *sql.Stmt, src Leg) (*siblings, error) {
	if !r.legCacheOn() {
		return siblingsOf(ctx, stmt(), src)
	}
	c := &r.legCache
	s, gen, ok := c.get(src)
	if s != nil {
		return s, nil
	}
	s, err := siblingsOf(ctx, stmt(), src)
	if err != nil || s == nil || !ok {
		return s, err
	}
	c.put(s, gen)
	return s, nil
}

// changingLegs runs write, a leg change of conversation conv ("" when it
// is not known) removing the legs removed, between the cache's begin and
// end: end runs once write returned (committed or failed) or panicked.
func (r *Router) changingLegs(conv ConversationID, removed []Leg, write func() error) error {
	r.legCache.begin()
	defer r.legCache.end(conv, removed...)
	return write()
}
