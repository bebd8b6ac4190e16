package sms

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// A send needs two facts before it calls Twilio: whether the contact opted
// out, and which parts of the delivery an earlier attempt had Twilio
// accept. Asking the database for them (sendStateQuery) was 8% of the
// daemon's CPU under load on SQLite, almost all of it the read
// transaction. On SQLite, where one process owns the database (the
// router relies on it too), both are known in memory instead:
//
//   - opt-outs are cached (optOutCache) and every write of sb_sms_optout,
//     all of which are this connector's, forgets the contact's entry
//     after it commits;
//   - the parts of a delivery can only exist if some attempt wrote them
//     (resumeFence): this process knows the deliveries it wrote parts for
//     outside the commit that finishes them, and the rows an earlier
//     process left all belong to deliveries numbered at most the largest
//     delivery ID in sb_sms_sent when the connector started (delivery IDs
//     are the router's queue sequence numbers, which only grow). Only
//     those deliveries are looked up. Delivery.Attempt is no proof: a
//     delivery reloaded after a crash or a shutdown in its first attempt
//     comes back as attempt 1 with the parts it sent recorded.
//
// On PostgreSQL several processes share the database (one may record a
// STOP, another take over a lane after a crash), so every send reads both
// from the database as before.

// maxOptOutCache bounds the contacts whose opt-out is kept in memory; a
// full cache starts over.
const maxOptOutCache = 100000

// maxResumable bounds the deliveries remembered as having parts written
// outside their finishing commit (failed attempts, a finishing commit that
// failed). Beyond it every send looks its parts up, as on PostgreSQL.
const maxResumable = 100000

// maxDeliveryIDQuery is the largest numeric delivery ID with rows in
// sb_sms_sent (0 for none; non-numeric IDs, as in tests, count as 0). It
// reads the whole delivery index once, at Start (about a quarter of a
// second per million rows kept for retention.metadata).
const maxDeliveryIDQuery = `SELECT COALESCE(MAX(CAST(delivery_id AS INTEGER)), 0) FROM sb_sms_sent`

// optOutCache is what sb_sms_optout says of contacts, on SQLite. gen
// changes with every write, so a read of the database that a write
// overtook is not cached.
type optOutCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]bool
}

// get returns the cached opt-out of a contact, and the generation a read
// of the database started now must present to put.
func (o *optOutCache) get(contactHash string) (out, ok bool, gen uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out, ok = o.m[contactHash]
	return out, ok, o.gen
}

// put caches what the database said, unless a write happened since gen.
func (o *optOutCache) put(contactHash string, out bool, gen uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if gen != o.gen {
		return
	}
	if o.m == nil || len(o.m) >= maxOptOutCache {
		o.m = make(map[string]bool)
	}
	o.m[contactHash] = out
}

// forget drops a contact's entry and fails every read under way. It is
// called after each write of sb_sms_optout has committed (or failed), so
// never inside a caller's transaction.
func (o *optOutCache) forget(contactHash string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	delete(o.m, contactHash)
}

// clear drops every entry (Start: the database may have changed while the
// connector was stopped).
func (o *optOutCache) clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	o.m = nil
}

// resumeFence tells, on SQLite, whether a delivery may have parts in
// sb_sms_sent from an earlier attempt.
type resumeFence struct {
	mu sync.Mutex
	// fence is the largest delivery ID with rows when the connector
	// started; known is false until Start read it (and after Stop).
	fence int64
	known bool
	// written are the deliveries this process wrote parts for outside
	// their finishing commit; full when maxResumable was reached.
	written map[bridge.DeliveryID]struct{}
	full    bool
}

// maybe reports whether id's parts must be looked up.
func (r *resumeFence) maybe(id bridge.DeliveryID) bool {
	n, err := strconv.ParseInt(string(id), 10, 64)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known || r.full || err != nil || n <= r.fence {
		return true
	}
	_, ok := r.written[id]
	return ok
}

// mark records that parts of id are about to be written outside its
// finishing commit; call it before writing.
func (r *resumeFence) mark(id bridge.DeliveryID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return
	}
	if len(r.written) >= maxResumable {
		r.full, r.written = true, nil
		return
	}
	if r.written == nil {
		r.written = make(map[bridge.DeliveryID]struct{})
	}
	r.written[id] = struct{}{}
}

func (r *resumeFence) set(fence int64, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fence, r.known = fence, known
}

// readResumeFence reads the fence at Start (SQLite only), and starts the
// opt-out cache afresh. Without the fence, every send looks its parts up.
func (c *Connector) readResumeFence(ctx context.Context) {
	if !c.local {
		return
	}
	c.optOuts.clear()
	var fence int64
	if err := c.db.QueryRow(ctx, maxDeliveryIDQuery).Scan(&fence); err != nil {
		c.log.Warn().Err(err).Msg("Failed to read the SMS delivery fence; every send will look up its parts")
		c.resumes.set(0, false)
		return
	}
	c.resumes.set(fence, true)
}

// sendState returns whether the contact opted out, and the parts of
// delivery id that an earlier attempt had Twilio accept (part -> sid).
func (c *Connector) sendState(ctx context.Context, contactHash string, id bridge.DeliveryID) (optedOut bool, done map[int]string, err error) {
	if c.local && !c.resumes.maybe(id) {
		optedOut, err = c.optedOut(ctx, contactHash)
		return optedOut, nil, err
	}
	var gen uint64
	if c.local {
		_, _, gen = c.optOuts.get(contactHash)
	}
	rows, err := c.stmts.state.queryRows(ctx, c.db, contactHash, string(id))
	if err != nil {
		return false, nil, fmt.Errorf("%w: load send state: %w", bridge.ErrDatabase, err)
	}
	defer rows.Close()
	for rows.Next() {
		var part int
		var sid string
		var out bool
		if err = rows.Scan(&part, &sid, &out); err != nil {
			return false, nil, fmt.Errorf("%w: load send state: %w", bridge.ErrDatabase, err)
		}
		if part < 0 {
			optedOut = out
			continue
		}
		if done == nil {
			done = make(map[int]string)
		}
		done[part] = sid
	}
	if err = rows.Err(); err != nil {
		return false, nil, fmt.Errorf("%w: load send state: %w", bridge.ErrDatabase, err)
	}
	if c.local {
		c.optOuts.put(contactHash, optedOut, gen)
	}
	return optedOut, done, nil
}
