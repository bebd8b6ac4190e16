package sms

import (
	"context"
	"sync"
	"time"

	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// settleWait bounds how long a status callback waits for the record of a
// send whose commit is under way (see unsettledSIDs).
const settleWait = 5 * time.Second

// sentPart is a part Twilio accepted, to be recorded in sb_sms_sent.
type sentPart struct {
	sid    string
	part   int
	status string
}

// recordParts records the parts of a delivery that was sent whole: their
// MessageSids and the chat's activity (which conversation a reply on a
// shared pool number goes to) ride the router's commit that records the
// delivery as finished (bridge.Delivery.OnCommit), so a sent SMS costs no
// commit of its own. Until that commit, a status callback for one of them
// waits for it (unsettledSIDs). Without a router, or when that commit
// fails, they are written here in a transaction of their own.
func (c *Connector) recordParts(ctx context.Context, d *bridge.Delivery, row *openChat, parts []sentPart) {
	if len(parts) == 0 {
		return
	}
	now := c.now().UnixMilli()
	write := func(ctx context.Context) error { return c.writeParts(ctx, d, parts, now, true) }
	sids := make([]string, len(parts))
	for i, p := range parts {
		sids[i] = p.sid
	}
	e := c.unsettled.add(sids, pairKey(row.contactHash, row.poolHash))
	committed := func(err error) {
		if err != nil {
			c.writeAlone(ctx, d, parts, now, true)
		}
		c.unsettled.done(e)
	}
	if !d.OnCommit(write, committed) {
		committed(errNoRouter)
	}
}

// recordPartial records at once the parts a failed attempt had Twilio
// accept: the next attempt of the delivery must not send them again.
func (c *Connector) recordPartial(ctx context.Context, d *bridge.Delivery, parts []sentPart) {
	if len(parts) > 0 {
		c.writeAlone(ctx, d, parts, c.now().UnixMilli(), false)
	}
}

// writeAlone writes parts in a transaction of its own. The delivery is
// remembered first as one whose parts a later attempt must look up
// (sendstate.go).
func (c *Connector) writeAlone(ctx context.Context, d *bridge.Delivery, parts []sentPart, now int64, touch bool) {
	c.resumes.mark(d.ID)
	err := c.db.DoTxn(context.WithoutCancel(ctx), nil, func(ctx context.Context) error {
		return c.writeParts(ctx, d, parts, now, touch)
	})
	if err != nil {
		// Twilio has the messages; losing the map only loses their status.
		c.log.Warn().Err(err).Str("chat", string(d.Chat)).Str("delivery", string(d.ID)).Msg("Failed to record MessageSid of a sent SMS")
	}
}

// writeParts inserts the parts' sb_sms_sent rows and, with touch, marks
// the chat active, in the transaction carried by ctx. On PostgreSQL the
// common case, one part and the touch, is one statement (a round trip
// less in the router's commit). Arguments are plain strings and int64s:
// database/sql converts named types by reflection, an allocation each.
func (c *Connector) writeParts(ctx context.Context, d *bridge.Delivery, parts []sentPart, now int64, touch bool) error {
	if touch && len(parts) == 1 && c.db.Dialect == dbutil.Postgres {
		p := parts[0]
		return c.stmts.insertSentTouch.exec(ctx, c.db, p.sid, string(d.ID), int64(p.part), string(d.Chat), string(d.Conversation), string(d.Message), p.status, now)
	}
	for _, p := range parts {
		if err := c.stmts.insertSent.exec(ctx, c.db, p.sid, string(d.ID), int64(p.part), string(d.Chat), string(d.Conversation), string(d.Message), p.status, now); err != nil {
			return err
		}
	}
	if !touch {
		return nil
	}
	return c.stmts.touchChat.exec(ctx, c.db, string(d.Chat), now)
}

// unsettledSIDs are sends whose rows wait for the router's commit. A
// status callback can outrun that commit (a fast carrier answers within
// milliseconds), and so can the contact's reply, which goes to the chat
// that sent last on its pool number (last_active_at): both wait for the
// commit rather than miss the row.
type unsettledSIDs struct {
	mu    sync.Mutex
	sids  map[string]*unsettled
	pairs map[string][]*unsettled
}

// unsettled is one delivery's parts, waiting for their commit.
type unsettled struct {
	sids []string
	pair string
	ch   chan struct{}
}

// pairKey names a contact on a pool number.
func pairKey(contactHash, poolHash string) string { return contactHash + "/" + poolHash }

func (u *unsettledSIDs) add(sids []string, pair string) *unsettled {
	e := &unsettled{sids: sids, pair: pair, ch: make(chan struct{})}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.sids == nil {
		u.sids, u.pairs = make(map[string]*unsettled), make(map[string][]*unsettled)
	}
	for _, s := range sids {
		u.sids[s] = e
	}
	u.pairs[pair] = append(u.pairs[pair], e)
	return e
}

func (u *unsettledSIDs) done(e *unsettled) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range e.sids {
		if u.sids[s] == e {
			delete(u.sids, s)
		}
	}
	list := u.pairs[e.pair]
	for i, x := range list {
		if x == e {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(u.pairs, e.pair)
	} else {
		u.pairs[e.pair] = list
	}
	close(e.ch)
}

// waitSID blocks until sid's row is committed (or failed), ctx ends or
// settleWait passes; it reports whether sid was waiting at all.
func (u *unsettledSIDs) waitSID(ctx context.Context, sid string) bool {
	u.mu.Lock()
	e, ok := u.sids[sid]
	u.mu.Unlock()
	if !ok {
		return false
	}
	waitAll(ctx, []*unsettled{e})
	return true
}

// waitPair blocks until the sends to a contact from a pool number that
// were under way are committed (or settleWait passes).
func (u *unsettledSIDs) waitPair(ctx context.Context, contactHash, poolHash string) {
	u.mu.Lock()
	list := append([]*unsettled(nil), u.pairs[pairKey(contactHash, poolHash)]...)
	u.mu.Unlock()
	waitAll(ctx, list)
}

func waitAll(ctx context.Context, list []*unsettled) {
	if len(list) == 0 {
		return
	}
	t := time.NewTimer(settleWait)
	defer t.Stop()
	for _, e := range list {
		select {
		case <-e.ch:
		case <-ctx.Done():
			return
		case <-t.C:
			return
		}
	}
}
