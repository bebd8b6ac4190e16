package bridge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

// A writer batch (writer.go) accepts many events and records many finished
// deliveries in one transaction. Every step below runs once per batch, not
// once per event: on PostgreSQL each step is one statement over arrays
// (one round trip, prepared once per connection by pgx), on SQLite a loop
// over the prepared single-row statements (SQLite runs in-process, so there
// is no round trip to save).

// acceptBatch runs the accepts of a writer batch inside its transaction. An
// op that refers to another message (a reply, an edit, a reaction, a
// receipt) starts a new segment, so it sees the map rows of every op queued
// before it, as if each op ran alone in order.
func (r *Router) acceptBatch(ctx context.Context, ops []*acceptOp) error {
	start := 0
	for i := 1; i <= len(ops); i++ {
		if i == len(ops) || ops[i].evt.ReplyTo != "" || ops[i].evt.Target != "" {
			if err := r.acceptSegment(ctx, ops[start:i]); err != nil {
				return err
			}
			start = i
		}
	}
	return nil
}

// acceptRow is one op's state through acceptSegment.
type acceptRow struct {
	op     *acceptOp
	conv   ConversationID
	legs   []Leg
	dests  []Leg
	q      queuedEvent
	now    time.Time
	queued []*item
}

// acceptSegment accepts ops in order. Reads and checks come first, so an op
// that fails a check has written nothing.
func (r *Router) acceptSegment(ctx context.Context, ops []*acceptOp) error {
	rows := make([]acceptRow, len(ops))
	hashes := make([][]byte, len(ops))
	for i, op := range ops {
		// A batch that failed runs each op again: forget the first attempt.
		r.disp.unreserve(op.reserved)
		op.duplicate, op.ignored, op.err, op.items, op.leased, op.foreign, op.reserved = false, false, nil, nil, nil, nil, nil
		rows[i].op = op
		// A source event whose message expired has no mapping row left;
		// its keyed hash says it was seen (expiry.go).
		hashes[i] = r.seal.seenHash(op.evt.Source, op.evt.SourceID)
	}
	seen, err := r.seenMany(ctx, hashes)
	if err != nil {
		return err
	}
	var sources []Leg
	for i := range rows {
		if seen[i] {
			rows[i].op.duplicate = true
		} else if !slices.Contains(sources, rows[i].op.evt.Source) {
			sources = append(sources, rows[i].op.evt.Source)
		}
	}
	sibs, err := r.siblingsMany(ctx, sources)
	if err != nil {
		return err
	}
	var msgs []messageRow
	var live []*acceptRow
	keys := make(map[messageRow]bool, len(rows))
	for i := range rows {
		row := &rows[i]
		op := row.op
		if op.duplicate {
			continue
		}
		evt := op.evt
		s := sibs[evt.Source]
		if s == nil {
			op.err = fmt.Errorf("%w: %s", ErrUnknownLeg, evt.Source)
			continue
		}
		row.conv, row.legs = s.conv, s.legs
		for _, l := range s.legs {
			if l != evt.Source {
				row.dests = append(row.dests, l)
			}
		}
		row.q.Event = evt
		if ok, err := r.resolveRefs(ctx, row); err != nil || !ok {
			return err
		}
		row.now = r.now()
		expires, err := r.messageExpiry(ctx, row.conv, row.legs, evt, row.now)
		if err != nil {
			return err
		}
		op.expires = expires
		// The same source event twice in one batch: the first one wins,
		// as it would have in its own transaction.
		key := messageRow{leg: evt.Source, remote: evt.SourceID}
		if keys[key] {
			op.duplicate = true
			continue
		}
		keys[key] = true
		msgs = append(msgs, messageRow{leg: evt.Source, remote: evt.SourceID, msg: op.msg, conv: row.conv, created: ms(row.now), expires: ms(expires)})
		live = append(live, row)
	}
	inserted, err := r.insertMessages(ctx, msgs, true)
	if err != nil {
		return err
	}
	var queue []*item
	for i, row := range live {
		op := row.op
		if !inserted[i] {
			op.duplicate = true
			continue
		}
		plain, err := json.Marshal(&row.q)
		if err != nil {
			op.err = fmt.Errorf("%w: %w", ErrInvalidEvent, err)
			continue
		}
		for _, dest := range row.dests {
			if op.excluded[dest] {
				continue
			}
			it := &item{conv: row.conv, msg: op.msg, lane: dest, nextAt: row.now, acceptedAt: row.now, expiresAt: op.expires}
			it.payload = r.seal.seal(plain, payloadAD(dest, op.msg))
			row.queued = append(row.queued, it)
			queue = append(queue, it)
		}
		clear(plain)
	}
	if err = r.insertQueue(ctx, queue); err != nil {
		return err
	}
	claims, err := r.disp.claimMany(ctx, queue)
	if err != nil {
		return err
	}
	for _, row := range live {
		op := row.op
		for _, it := range row.queued {
			c := claims[it.lane]
			if !c.owned {
				continue
			}
			r.disp.reserve(it.seq)
			op.reserved = append(op.reserved, it.seq)
			op.leased = append(op.leased, it.lane)
			if it.seq == c.first {
				// The lane's first row in this batch brings the rows
				// this process must deliver before it.
				op.items = append(op.items, c.older...)
				if c.foreign > 0 {
					if op.foreign == nil {
						op.foreign = make(map[Leg]int64)
					}
					op.foreign[it.lane] = c.foreign
				}
			}
			op.items = append(op.items, it)
		}
	}
	return nil
}

// resolveRefs translates a row's reply and target into core message IDs.
// It returns false when the op ends here (op.err or op.ignored set).
func (r *Router) resolveRefs(ctx context.Context, row *acceptRow) (bool, error) {
	evt, op := row.op.evt, row.op
	var err error
	if evt.ReplyTo != "" {
		// A reply to a message the bridge never saw is delivered as a plain message.
		if row.q.ReplyTo, err = r.messageID(ctx, evt.Source, evt.ReplyTo); err != nil {
			return false, err
		}
	}
	if evt.Target != "" {
		if row.q.Target, err = r.messageID(ctx, evt.Source, evt.Target); err != nil {
			return false, err
		}
		if row.q.Target == "" {
			if evt.Kind == KindReadReceipt {
				op.ignored = true
			} else {
				op.err = fmt.Errorf("%w: %s of %s", ErrTargetUnknown, evt.Kind, evt.SourceID)
			}
			return false, nil
		}
	}
	return true, nil
}

// laneClaim is the outcome of claiming one lane for the rows a batch queued.
type laneClaim struct {
	// first and last are the lowest and highest seqs queued on the lane.
	first, last int64
	owned       bool
	older       []*item
	foreign     int64
}

// claimMany runs inside an accept transaction after rows were queued. For
// each lane it reports whether this process holds it (and so delivers the
// rows itself), and returns older rows of the lane that this process must
// deliver first: rows left by a crashed process, or rows another process
// queued while this one held the lease. See claimLaneQuery.
func (d *dispatcher) claimMany(ctx context.Context, queued []*item) (map[laneKey]*laneClaim, error) {
	if len(queued) == 0 {
		return nil, nil
	}
	claims := make(map[laneKey]*laneClaim)
	var lanes []laneKey
	for _, it := range queued {
		c := claims[it.lane]
		if c == nil {
			c = &laneClaim{first: it.seq, last: it.seq}
			claims[it.lane] = c
			lanes = append(lanes, it.lane)
		}
		c.first, c.last = min(c.first, it.seq), max(c.last, it.seq)
	}
	now := d.r.now()
	leased := make(map[laneKey]bool, len(lanes))
	var ask []laneKey
	d.mu.Lock()
	for _, k := range lanes {
		until, ok := d.leases[k]
		leased[k] = ok
		if ok && until.Sub(now) > d.r.opts.Lease/2 && !d.multiProcess {
			claims[k].owned = true
			continue
		}
		ask = append(ask, k)
	}
	d.mu.Unlock()
	if len(ask) == 0 {
		return claims, nil
	}
	// A stable lock order keeps concurrent writers from deadlocking.
	slices.SortFunc(ask, func(a, b laneKey) int {
		return strings.Compare(string(a.Network)+"\x00"+string(a.Chat), string(b.Network)+"\x00"+string(b.Chat))
	})
	owners, err := d.r.claimLanes(ctx, ask, claims, now)
	if err != nil {
		return nil, err
	}
	for _, k := range ask {
		c := claims[k]
		if owners[k] != d.r.owner {
			continue
		}
		c.owned = true
		d.mu.Lock()
		seen := int64(0)
		if l := d.lanes[k]; l != nil {
			seen = l.foreignSeen
		}
		d.mu.Unlock()
		if !leased[k] || c.foreign > seen {
			if c.older, err = d.r.loadLane(ctx, k, c.first); err != nil {
				return nil, err
			}
		}
	}
	return claims, nil
}

// finishOp is a finished delivery inside a writer batch: its queue row is
// deleted and, when it was delivered, the copy's map row written.
type finishOp struct {
	it     *item
	remote RemoteID
	record bool
	now    time.Time
}

// finishBatch records the finished deliveries of a writer batch.
func (r *Router) finishBatch(ctx context.Context, ops []*finishOp) error {
	seqs := make([]int64, len(ops))
	var msgs []messageRow
	for i, op := range ops {
		seqs[i] = op.it.seq
		if op.record {
			it := op.it
			msgs = append(msgs, messageRow{leg: it.lane, remote: op.remote, msg: it.msg, conv: it.conv, created: ms(op.now), expires: ms(it.expiresAt)})
		}
	}
	if err := r.deleteQueue(ctx, seqs); err != nil {
		return err
	}
	_, err := r.insertMessages(ctx, msgs, false)
	return err
}

// Statements over arrays, for PostgreSQL.
const (
	seenManyQuery     = `SELECT hash FROM sb_seen WHERE hash = ANY($1::bytea[])`
	siblingsManyQuery = `
		SELECT l1.network, l1.chat_id, l2.conversation_id, l2.network, l2.chat_id FROM sb_leg l1
		JOIN sb_leg l2 ON l2.conversation_id = l1.conversation_id
		WHERE (l1.network, l1.chat_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
	insertMessagesQuery = `
		INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
		SELECT n, c, rid, mid, cv, t, NULLIF(e, 0)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS u(n, c, rid, mid, cv, t, e)
		ON CONFLICT DO NOTHING RETURNING message_id`
	insertQueueManyQuery = `
		INSERT INTO sb_queue (conversation_id, message_id, network, chat_id, payload, attempts, next_attempt_at, accepted_at, expires_at)
		SELECT cv, mid, n, c, p, 0, t, t, NULLIF(e, 0)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::bigint[]) WITH ORDINALITY AS u(cv, mid, n, c, p, t, e, o)
		ORDER BY o
		RETURNING seq, message_id, network, chat_id`
	// claimLanesQuery is claimLaneQuery for many lanes at once.
	claimLanesQuery = `
		UPDATE sb_leg SET
			lease_owner = CASE WHEN lease_owner = $1 OR lease_until < $2 THEN $1 ELSE lease_owner END,
			lease_until = CASE WHEN lease_owner = $1 OR lease_until < $2 THEN $3 ELSE lease_until END,
			foreign_seq = CASE WHEN lease_owner = $1 OR lease_until < $2 OR foreign_seq > v.seq THEN foreign_seq ELSE v.seq END
		FROM unnest($4::text[], $5::text[], $6::bigint[]) AS v(network, chat_id, seq)
		WHERE sb_leg.network = v.network AND sb_leg.chat_id = v.chat_id
		RETURNING sb_leg.network, sb_leg.chat_id, sb_leg.lease_owner, sb_leg.foreign_seq`
	deleteQueueManyQuery = `DELETE FROM sb_queue WHERE seq = ANY($1::bigint[])`
)

func (r *Router) arrays() bool { return r.db.Dialect == dbutil.Postgres }

// seenMany reports for each hash whether sb_seen holds it.
func (r *Router) seenMany(ctx context.Context, hashes [][]byte) ([]bool, error) {
	out := make([]bool, len(hashes))
	if !r.arrays() {
		for i, h := range hashes {
			var one int
			err := r.stmts.queryRow(ctx, r.stmts.seen, h).Scan(&one)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("%w: look up seen event: %w", ErrDatabase, err)
			}
			out[i] = err == nil
		}
		return out, nil
	}
	rows, err := r.db.Query(ctx, seenManyQuery, hashes)
	if err != nil {
		return nil, fmt.Errorf("%w: look up seen events: %w", ErrDatabase, err)
	}
	defer rows.Close()
	found := make(map[string]bool)
	for rows.Next() {
		var h []byte
		if err = rows.Scan(&h); err != nil {
			return nil, err
		}
		found[string(h)] = true
	}
	if err = rows.Err(); err != nil {
		return nil, err
	}
	for i, h := range hashes {
		out[i] = found[string(h)]
	}
	return out, nil
}

// siblings is a source leg's conversation and every leg of it.
type siblings struct {
	conv ConversationID
	legs []Leg
}

// siblingsMany returns the conversation of each source leg that has one.
func (r *Router) siblingsMany(ctx context.Context, sources []Leg) (map[Leg]*siblings, error) {
	out := make(map[Leg]*siblings, len(sources))
	if len(sources) == 0 {
		return out, nil
	}
	scan := func(rows dbutil.Rows, src *Leg) error {
		defer rows.Close()
		for rows.Next() {
			var from, l Leg
			var conv ConversationID
			dst := []any{&conv, &l.Network, &l.Chat}
			if src == nil {
				dst = append([]any{&from.Network, &from.Chat}, dst...)
			} else {
				from = *src
			}
			if err := rows.Scan(dst...); err != nil {
				return err
			}
			s := out[from]
			if s == nil {
				s = &siblings{conv: conv}
				out[from] = s
			}
			s.legs = append(s.legs, l)
		}
		return rows.Err()
	}
	if !r.arrays() {
		for _, src := range sources {
			rows, err := r.stmts.query(ctx, r.stmts.siblings, src.Network, src.Chat)
			if err != nil {
				return nil, err
			}
			if err = scan(rows, &src); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	networks, chats := make([]string, len(sources)), make([]string, len(sources))
	for i, s := range sources {
		networks[i], chats[i] = string(s.Network), string(s.Chat)
	}
	rows, err := r.db.Query(ctx, siblingsManyQuery, networks, chats)
	if err != nil {
		return nil, err
	}
	return out, scan(rows, nil)
}

// messageRow is one sb_message row to insert.
type messageRow struct {
	leg              Leg
	remote           RemoteID
	msg              MessageID
	conv             ConversationID
	created, expires int64
}

// insertMessages inserts map rows, skipping those whose (leg, remote ID)
// exists. With report it returns which rows were inserted (the message IDs
// of rows must then differ).
func (r *Router) insertMessages(ctx context.Context, rows []messageRow, report bool) ([]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]bool, len(rows))
	if !r.arrays() {
		for i, m := range rows {
			res, err := r.stmts.exec(ctx, r.stmts.insMessage, m.leg.Network, m.leg.Chat, m.remote, m.msg, m.conv, m.created, nullInt(m.expires))
			if err != nil {
				return nil, err
			}
			n, _ := res.RowsAffected()
			out[i] = n > 0
		}
		return out, nil
	}
	cols := make([][]string, 5)
	for i := range cols {
		cols[i] = make([]string, len(rows))
	}
	created, expires := make([]int64, len(rows)), make([]int64, len(rows))
	for i, m := range rows {
		cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i] = string(m.leg.Network), string(m.leg.Chat), string(m.remote), string(m.msg), string(m.conv)
		created[i], expires[i] = m.created, m.expires
	}
	args := []any{cols[0], cols[1], cols[2], cols[3], cols[4], created, expires}
	if !report {
		_, err := r.db.Exec(ctx, insertMessagesQuery, args...)
		return nil, err
	}
	res, err := r.db.Query(ctx, insertMessagesQuery, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	ins := make(map[MessageID]bool, len(rows))
	for res.Next() {
		var id MessageID
		if err = res.Scan(&id); err != nil {
			return nil, err
		}
		ins[id] = true
	}
	if err = res.Err(); err != nil {
		return nil, err
	}
	for i, m := range rows {
		out[i] = ins[m.msg]
	}
	return out, nil
}

func nullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }

// insertQueue inserts queue rows in order and sets their seqs.
func (r *Router) insertQueue(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	if !r.arrays() {
		for _, it := range items {
			err := r.stmts.queryRow(ctx, r.stmts.insQueue, it.conv, it.msg, it.lane.Network, it.lane.Chat, it.payload, ms(it.nextAt), nullMS(it.expiresAt)).Scan(&it.seq)
			if err != nil {
				return err
			}
		}
		return nil
	}
	n := len(items)
	convs, msgs, networks, chats := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, at, expires := make([][]byte, n), make([]int64, n), make([]int64, n)
	type key struct {
		msg  MessageID
		lane laneKey
	}
	byKey := make(map[key]*item, n)
	for i, it := range items {
		convs[i], msgs[i], networks[i], chats[i] = string(it.conv), string(it.msg), string(it.lane.Network), string(it.lane.Chat)
		payloads[i], at[i], expires[i] = it.payload, ms(it.nextAt), ms(it.expiresAt)
		byKey[key{it.msg, it.lane}] = it
	}
	rows, err := r.db.Query(ctx, insertQueueManyQuery, convs, msgs, networks, chats, payloads, at, expires)
	if err != nil {
		return err
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var k key
		var seq int64
		if err = rows.Scan(&seq, &k.msg, &k.lane.Network, &k.lane.Chat); err != nil {
			return err
		}
		if it := byKey[k]; it != nil {
			it.seq = seq
			got++
		}
	}
	if err = rows.Err(); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%w: queued %d of %d rows", ErrDatabase, got, n)
	}
	return nil
}

// claimLanes claims lanes (sorted) for the rows in claims; it returns each
// lane's lease owner after the claim and sets the claims' foreign seqs.
func (r *Router) claimLanes(ctx context.Context, lanes []laneKey, claims map[laneKey]*laneClaim, now time.Time) (map[laneKey]string, error) {
	owners := make(map[laneKey]string, len(lanes))
	if !r.arrays() {
		for _, k := range lanes {
			var owner sql.NullString
			c := claims[k]
			err := r.db.QueryRow(ctx, claimLaneQuery, r.owner, ms(now), ms(now.Add(r.opts.Lease)), c.last, k.Network, k.Chat).Scan(&owner, &c.foreign)
			if err != nil {
				return nil, err
			}
			owners[k] = owner.String
		}
		return owners, nil
	}
	networks, chats, seqs := make([]string, len(lanes)), make([]string, len(lanes)), make([]int64, len(lanes))
	for i, k := range lanes {
		networks[i], chats[i], seqs[i] = string(k.Network), string(k.Chat), claims[k].last
	}
	rows, err := r.db.Query(ctx, claimLanesQuery, r.owner, ms(now), ms(now.Add(r.opts.Lease)), networks, chats, seqs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k laneKey
		var owner sql.NullString
		var foreign int64
		if err = rows.Scan(&k.Network, &k.Chat, &owner, &foreign); err != nil {
			return nil, err
		}
		owners[k] = owner.String
		if c := claims[k]; c != nil {
			c.foreign = foreign
		}
	}
	if err = rows.Err(); err != nil {
		return nil, err
	}
	if len(owners) != len(lanes) {
		// A lane without its leg row: the one-lane claim failed the same way.
		return nil, fmt.Errorf("%w: claim lanes: %w", ErrDatabase, sql.ErrNoRows)
	}
	return owners, nil
}

// deleteQueue deletes queue rows by seq.
func (r *Router) deleteQueue(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if !r.arrays() {
		for _, s := range seqs {
			if _, err := r.stmts.exec(ctx, r.stmts.del, s); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := r.db.Exec(ctx, deleteQueueManyQuery, seqs)
	return err
}
