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
	seen, sibs, err := r.readMany(ctx, ops, hashes)
	if err != nil {
		return err
	}
	var msgs []messageRow
	var live []*acceptRow
	keys := make(map[messageRow]bool, len(rows))
	for i := range rows {
		row := &rows[i]
		op := row.op
		if seen[i] {
			op.duplicate = true
		}
		if op.duplicate {
			continue
		}
		evt := op.evt
		s := sibs[i]
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
		if ok, err := r.resolveRefs(ctx, row); err != nil {
			return err
		} else if !ok {
			continue // this op ends here; the ops after it in the segment go on
		}
		row.now = r.now()
		expires, err := r.messageExpiry(ctx, row.conv, row.legs, evt, historyClock(evt, row.now))
		if err != nil {
			return err
		}
		if evt.History {
			if ok, err := r.keepHistory(ctx, row, expires); err != nil {
				return err
			} else if !ok {
				continue
			}
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
	if r.arrays() {
		return r.writeAcceptsPG(ctx, live, msgs)
	}
	inserted, err := r.insertMessages(ctx, msgs)
	if err != nil {
		return err
	}
	var queue []*item
	for i, row := range live {
		if !inserted[i] {
			row.op.duplicate = true
			continue
		}
		queue = append(queue, r.sealRow(row)...)
	}
	if err = r.insertQueue(ctx, queue); err != nil {
		return err
	}
	claims, ask := r.disp.prepareClaims(queue)
	owners, err := r.claimLanes(ctx, ask, claims)
	if err != nil {
		return err
	}
	if err = r.disp.finishClaims(ctx, claims, ask, owners); err != nil {
		return err
	}
	r.takeRows(live, claims)
	return nil
}

// sealRow seals a row's event for each of its destinations and returns the
// queue items (without seqs). An event that cannot be encoded sets op.err.
func (r *Router) sealRow(row *acceptRow) []*item {
	op := row.op
	plain, err := json.Marshal(&row.q)
	if err != nil {
		op.err = fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		return nil
	}
	defer clear(plain)
	for _, dest := range row.dests {
		if op.excluded[dest] {
			continue
		}
		it := &item{conv: row.conv, msg: op.msg, lane: dest, nextAt: row.now, acceptedAt: row.now, expiresAt: op.expires}
		it.payload = r.seal.seal(plain, payloadAD(dest, op.msg))
		row.queued = append(row.queued, it)
	}
	return row.queued
}

// takeRows hands each op the rows it queued on lanes this process holds,
// after the rows older than them, and reserves them (see reserve).
func (r *Router) takeRows(live []*acceptRow, claims map[laneKey]*laneClaim) {
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
	// leased: this process held the lane before the claim.
	leased  bool
	owned   bool
	older   []*item
	foreign int64
}

// prepareClaims runs inside an accept transaction after rows were queued.
// A lane is delivered by the process holding its lease (see
// claimLaneQuery); the rows this process queues on a lane it holds are
// delivered by it, after older rows it must load first: rows left by a
// crashed process, or rows another process queued while this one held the
// lease. prepareClaims groups the rows by lane and returns the lanes whose
// lease must be claimed in the database (sorted: a stable lock order keeps
// concurrent writers from deadlocking). On SQLite a lane this process
// holds with time to spare needs no claim.
func (d *dispatcher) prepareClaims(queued []*item) (map[laneKey]*laneClaim, []laneKey) {
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
	var ask []laneKey
	d.mu.Lock()
	for _, k := range lanes {
		until, ok := d.leases[k]
		c := claims[k]
		c.leased = ok
		if ok && until.Sub(now) > d.r.opts.Lease/2 && !d.multiProcess {
			c.owned = true
			continue
		}
		ask = append(ask, k)
	}
	d.mu.Unlock()
	slices.SortFunc(ask, func(a, b laneKey) int {
		if c := strings.Compare(string(a.Network), string(b.Network)); c != 0 {
			return c
		}
		return strings.Compare(string(a.Chat), string(b.Chat))
	})
	return claims, ask
}

// finishClaims marks the claimed lanes this process now holds as owned and
// loads the rows it must deliver before this batch's: all of them when it
// did not hold the lane, and those another process queued (foreign_seq)
// since it last looked.
func (d *dispatcher) finishClaims(ctx context.Context, claims map[laneKey]*laneClaim, ask []laneKey, owners map[laneKey]string) error {
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
		if !c.leased || c.foreign > seen {
			var err error
			if c.older, err = d.r.loadLane(ctx, k, c.first); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishOp is a finished delivery inside a writer batch: its queue row is
// deleted and, when it was delivered, the copy's map row written.
type finishOp struct {
	it     *item
	remote RemoteID
	record bool
	now    time.Time
	// hooks are the connector's own writes (Delivery.OnCommit).
	hooks []commitHook
}

// The two statements of an accept batch on PostgreSQL.
const (
	// readManyQuery reads, for each event (row number i), whether its
	// keyed hash is in sb_seen and every leg of its source leg's
	// conversation (none: a NULL leg).
	readManyQuery = `
		SELECT u.i, EXISTS (SELECT 1 FROM sb_seen WHERE hash = u.h), l2.conversation_id, l2.network, l2.chat_id
		FROM unnest($1::bytea[], $2::text[], $3::text[]) WITH ORDINALITY AS u(h, n, c, i)
		LEFT JOIN sb_leg l1 ON l1.network = u.n AND l1.chat_id = u.c
		LEFT JOIN sb_leg l2 ON l2.conversation_id = l1.conversation_id`
	// writeManyQuery inserts the map rows (m), the queue rows of the
	// messages that were not duplicates (q), and claims their lanes as
	// claimLaneQuery does (c), returning what each step did.
	writeManyQuery = `
		WITH m AS (
			INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
			SELECT n, c, rid, mid, cv, t, NULLIF(e, 0)
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS u(n, c, rid, mid, cv, t, e)
			ON CONFLICT DO NOTHING RETURNING message_id
		), q AS (
			INSERT INTO sb_queue (conversation_id, message_id, network, chat_id, payload, attempts, next_attempt_at, accepted_at, expires_at)
			SELECT cv, mid, n, c, p, 0, t, t, NULLIF(e, 0)
			FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bigint[], $14::bigint[]) WITH ORDINALITY AS u(cv, mid, n, c, p, t, e, o)
			WHERE mid IN (SELECT message_id FROM m)
			ORDER BY o
			RETURNING seq, message_id, network, chat_id
		), c AS (
			UPDATE sb_leg SET
				lease_owner = CASE WHEN lease_owner = $15 OR lease_until < $16 THEN $15 ELSE lease_owner END,
				lease_until = CASE WHEN lease_owner = $15 OR lease_until < $16 THEN $17 ELSE lease_until END,
				foreign_seq = CASE WHEN lease_owner = $15 OR lease_until < $16 OR foreign_seq > v.seq THEN foreign_seq ELSE v.seq END
			FROM (SELECT network, chat_id, max(seq) AS seq FROM q GROUP BY network, chat_id ORDER BY network, chat_id) v
			WHERE sb_leg.network = v.network AND sb_leg.chat_id = v.chat_id
			RETURNING sb_leg.network, sb_leg.chat_id, sb_leg.lease_owner, sb_leg.foreign_seq
		)
		SELECT 'm', message_id, '', '', 0::bigint, '' FROM m
		UNION ALL SELECT 'q', message_id, network, chat_id, seq, '' FROM q
		UNION ALL SELECT 'c', '', network, chat_id, foreign_seq, COALESCE(lease_owner, '') FROM c`
	// finishManyQuery deletes finished queue rows and writes the map rows
	// of the delivered copies.
	finishManyQuery = `
		WITH d AS (DELETE FROM sb_queue WHERE seq = ANY($8::bigint[]))
		INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
		SELECT n, c, rid, mid, cv, t, NULLIF(e, 0)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS u(n, c, rid, mid, cv, t, e)
		ON CONFLICT DO NOTHING`
)

func (r *Router) arrays() bool { return r.db.Dialect == dbutil.Postgres }

// siblings is a source leg's conversation and every leg of it.
type siblings struct {
	conv ConversationID
	legs []Leg
}

// readMany reports for each op whether its source event was seen before
// (sb_seen; hashes[i] is op i's) and its source leg's conversation (nil:
// none).
func (r *Router) readMany(ctx context.Context, ops []*acceptOp, hashes [][]byte) ([]bool, []*siblings, error) {
	seen, sibs := make([]bool, len(ops)), make([]*siblings, len(ops))
	if r.arrays() {
		networks, chats := make([]string, len(ops)), make([]string, len(ops))
		for i, op := range ops {
			networks[i], chats[i] = string(op.evt.Source.Network), string(op.evt.Source.Chat)
		}
		rows, err := r.db.Query(ctx, readManyQuery, hashes, networks, chats)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: read batch: %w", ErrDatabase, err)
		}
		defer rows.Close()
		for rows.Next() {
			var i int
			var found bool
			var conv, network, chat sql.NullString
			if err = rows.Scan(&i, &found, &conv, &network, &chat); err != nil {
				return nil, nil, err
			}
			if i < 1 || i > len(ops) {
				return nil, nil, fmt.Errorf("%w: read batch: row %d of %d", ErrDatabase, i, len(ops))
			}
			seen[i-1] = found
			if conv.Valid {
				if sibs[i-1] == nil {
					sibs[i-1] = &siblings{conv: ConversationID(conv.String)}
				}
				sibs[i-1].legs = append(sibs[i-1].legs, Leg{Network: NetworkID(network.String), Chat: ChatID(chat.String)})
			}
		}
		return seen, sibs, rows.Err()
	}
	// Each statement is bound to the transaction once per batch, the
	// siblings one only when a source leg's legs are not in memory.
	seenStmt := r.stmts.in(ctx, r.stmts.seen)
	var sibStmt *sql.Stmt
	bindSiblings := func() *sql.Stmt {
		if sibStmt == nil {
			sibStmt = r.stmts.in(ctx, r.stmts.siblings)
		}
		return sibStmt
	}
	var bySource map[Leg]*siblings
	var one int
	for i, op := range ops {
		err := seenStmt.QueryRowContext(ctx, hashes[i]).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, fmt.Errorf("%w: look up seen event: %w", ErrDatabase, err)
		}
		seen[i] = err == nil
		if seen[i] {
			continue
		}
		src := op.evt.Source
		s, ok := bySource[src]
		if !ok {
			if s, err = r.siblingsInTxn(ctx, bindSiblings, src); err != nil {
				return nil, nil, err
			}
			if bySource == nil {
				bySource = make(map[Leg]*siblings, 1)
			}
			bySource[src] = s
		}
		sibs[i] = s
	}
	return seen, sibs, nil
}

// siblingsOf reads the conversation of a source leg (nil: none) with the
// prepared siblingLegsQuery.
func siblingsOf(ctx context.Context, stmt *sql.Stmt, src Leg) (*siblings, error) {
	rows, err := stmt.QueryContext(ctx, src.Network, src.Chat)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var s *siblings
	for rows.Next() {
		var l Leg
		var conv ConversationID
		if err = rows.Scan(&conv, &l.Network, &l.Chat); err != nil {
			return nil, err
		}
		if s == nil {
			s = &siblings{conv: conv}
		}
		s.legs = append(s.legs, l)
	}
	return s, rows.Err()
}

// writeAcceptsPG writes an accept batch on PostgreSQL in one statement
// (writeManyQuery). Payloads are sealed before it runs, so a duplicate's
// sealing is wasted; duplicates are rare.
func (r *Router) writeAcceptsPG(ctx context.Context, live []*acceptRow, msgs []messageRow) error {
	var queue []*item
	for _, row := range live {
		queue = append(queue, r.sealRow(row)...)
	}
	if len(msgs) == 0 {
		return nil
	}
	args := messageArgs(msgs)
	n := len(queue)
	convs, ids, networks, chats := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, at, expires := make([][]byte, n), make([]int64, n), make([]int64, n)
	type key struct {
		msg  MessageID
		lane laneKey
	}
	byKey := make(map[key]*item, n)
	for i, it := range queue {
		convs[i], ids[i], networks[i], chats[i] = string(it.conv), string(it.msg), string(it.lane.Network), string(it.lane.Chat)
		payloads[i], at[i], expires[i] = it.payload, ms(it.nextAt), ms(it.expiresAt)
		byKey[key{it.msg, it.lane}] = it
	}
	now := r.now()
	args = append(args, convs, ids, networks, chats, payloads, at, expires, r.owner, ms(now), ms(now.Add(r.opts.Lease)))
	rows, err := r.db.Query(ctx, writeManyQuery, args...)
	if err != nil {
		return err
	}
	inserted := make(map[MessageID]bool, len(msgs))
	owners := make(map[laneKey]string)
	claimed := make(map[laneKey]int64)
	var queued []*item
	for rows.Next() {
		var what, owner string
		var k key
		var num int64
		if err = rows.Scan(&what, &k.msg, &k.lane.Network, &k.lane.Chat, &num, &owner); err != nil {
			rows.Close()
			return err
		}
		switch what {
		case "m":
			inserted[k.msg] = true
		case "q":
			if it := byKey[k]; it != nil {
				it.seq = num
				queued = append(queued, it)
			}
		case "c":
			owners[k.lane], claimed[k.lane] = owner, num
		}
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return err
	}
	for _, row := range live {
		if !inserted[row.op.msg] {
			row.op.duplicate = true
			row.queued = nil
			continue
		}
		for _, it := range row.queued {
			if it.seq == 0 {
				return fmt.Errorf("%w: queue row of %s not returned", ErrDatabase, it.msg)
			}
		}
	}
	claims, ask := r.disp.prepareClaims(queued)
	for _, k := range ask {
		_, ok := owners[k]
		if !ok {
			// A lane without its leg row: the one-lane claim failed the same way.
			return fmt.Errorf("%w: claim lane: %w", ErrDatabase, sql.ErrNoRows)
		}
		claims[k].foreign = claimed[k]
	}
	if err = r.disp.finishClaims(ctx, claims, ask, owners); err != nil {
		return err
	}
	r.takeRows(live, claims)
	return nil
}

// messageRow is one sb_message row to insert.
type messageRow struct {
	leg              Leg
	remote           RemoteID
	msg              MessageID
	conv             ConversationID
	created, expires int64
}

// messageArgs are the array arguments $1..$7 of the map row inserts.
func messageArgs(rows []messageRow) []any {
	n := len(rows)
	networks, chats, remotes, ids, convs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created, expires := make([]int64, n), make([]int64, n)
	for i, m := range rows {
		networks[i], chats[i], remotes[i], ids[i], convs[i] = string(m.leg.Network), string(m.leg.Chat), string(m.remote), string(m.msg), string(m.conv)
		created[i], expires[i] = m.created, m.expires
	}
	return []any{networks, chats, remotes, ids, convs, created, expires}
}

// insertMessages inserts map rows on SQLite, skipping those whose (leg,
// remote ID) exists, and returns which were inserted.
func (r *Router) insertMessages(ctx context.Context, rows []messageRow) ([]bool, error) {
	out := make([]bool, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	stmt := r.stmts.in(ctx, r.stmts.insMessage)
	for i, m := range rows {
		res, err := stmt.ExecContext(ctx, string(m.leg.Network), string(m.leg.Chat), string(m.remote), string(m.msg), string(m.conv), m.created, nullArg(m.expires))
		if err != nil {
			return nil, err
		}
		n, _ := res.RowsAffected()
		out[i] = n > 0
	}
	return out, nil
}

// The single-row statements above and below are run for every message on
// SQLite: their arguments are passed as plain strings and int64s (or nil
// for NULL), which database/sql hands to the driver as they are; a named
// string type or an sql.NullInt64 is converted first, at an allocation per
// argument.

// nullArg is v as a statement argument, NULL when 0.
func nullArg(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// insertQueue inserts queue rows in order on SQLite and sets their seqs.
func (r *Router) insertQueue(ctx context.Context, items []*item) error {
	if len(items) == 0 {
		return nil
	}
	stmt := r.stmts.in(ctx, r.stmts.insQueue)
	for _, it := range items {
		err := stmt.QueryRowContext(ctx, string(it.conv), string(it.msg), string(it.lane.Network), string(it.lane.Chat), it.payload, ms(it.nextAt), nullArg(ms(it.expiresAt))).Scan(&it.seq)
		if err != nil {
			return err
		}
	}
	return nil
}

// claimLanes claims lanes on SQLite for the rows in claims (see
// claimLaneQuery); it returns each lane's lease owner after the claim and
// sets the claims' foreign seqs.
func (r *Router) claimLanes(ctx context.Context, lanes []laneKey, claims map[laneKey]*laneClaim) (map[laneKey]string, error) {
	owners := make(map[laneKey]string, len(lanes))
	now := r.now()
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

// finishBatch records the finished deliveries of a writer batch: deletes
// their queue rows and writes the map rows of delivered copies.
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
	if r.arrays() {
		if _, err := r.db.Exec(ctx, finishManyQuery, append(messageArgs(msgs), seqs)...); err != nil {
			return err
		}
		return runHooks(ctx, ops)
	}
	del := r.stmts.in(ctx, r.stmts.del)
	for _, s := range seqs {
		if _, err := del.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	if _, err := r.insertMessages(ctx, msgs); err != nil {
		return err
	}
	return runHooks(ctx, ops)
}

// runHooks runs the connectors' writes of finished deliveries (see
// Delivery.OnCommit) in the batch's transaction.
func runHooks(ctx context.Context, ops []*finishOp) error {
	for _, op := range ops {
		for _, h := range op.hooks {
			if err := h.write(ctx); err != nil {
				return fmt.Errorf("%w: connector's bookkeeping of delivery %d: %w", ErrDatabase, op.it.seq, err)
			}
		}
	}
	return nil
}
