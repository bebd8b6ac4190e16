package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/util/dbutil"
)

// SQL used by the router. Placeholders are $n; dbutil rewrites them for SQLite.
const (
	insertConversationQuery = `INSERT INTO sb_conversation (id, created_at) VALUES ($1, $2)`
	insertLegQuery          = `INSERT INTO sb_leg (network, chat_id, conversation_id, created_at) VALUES ($1, $2, $3, $4)`
	legConversationQuery    = `SELECT conversation_id FROM sb_leg WHERE network=$1 AND chat_id=$2`
	conversationLegsQuery   = `SELECT network, chat_id FROM sb_leg WHERE conversation_id=$1 ORDER BY created_at, network, chat_id`
	siblingLegsQuery        = `
		SELECT l2.conversation_id, l2.network, l2.chat_id FROM sb_leg l1
		JOIN sb_leg l2 ON l2.conversation_id = l1.conversation_id
		WHERE l1.network=$1 AND l1.chat_id=$2`
	deleteLegQuery      = `DELETE FROM sb_leg WHERE network=$1 AND chat_id=$2`
	deleteLegQueueQuery = `DELETE FROM sb_queue WHERE network=$1 AND chat_id=$2`

	insertMessageQuery = `
		INSERT INTO sb_message (network, chat_id, remote_id, message_id, conversation_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`
	messageIDQuery = `SELECT message_id FROM sb_message WHERE network=$1 AND chat_id=$2 AND remote_id=$3`
	remoteIDQuery  = `SELECT remote_id FROM sb_message WHERE message_id=$1 AND network=$2 AND chat_id=$3`

	insertQueueQuery = `
		INSERT INTO sb_queue (conversation_id, message_id, network, chat_id, payload, attempts, next_attempt_at, accepted_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7) RETURNING seq`
	deleteQueueQuery = `DELETE FROM sb_queue WHERE seq=$1`
	retryQueueQuery  = `UPDATE sb_queue SET attempts=$1, next_attempt_at=$2 WHERE seq=$3`
	// laneLoadLimit bounds the rows one lane load reads.
	laneLoadLimit  = 10000
	laneItemsQuery = `
		SELECT seq, conversation_id, message_id, payload, attempts, next_attempt_at, accepted_at, expires_at
		FROM sb_queue WHERE network=$1 AND chat_id=$2 AND seq < $3 ORDER BY seq LIMIT $4`

	// A lane (destination leg) is delivered by the process holding its lease.
	acquireLeaseQuery = `
		UPDATE sb_leg SET lease_owner=$1, lease_until=$2
		WHERE network=$3 AND chat_id=$4 AND (lease_owner=$1 OR lease_until < $5)`
	// claimLaneQuery takes or renews the lease if it is free or ours, and
	// otherwise records that a row (seq $4) was queued behind the holder's
	// back. SET expressions all see the old row.
	claimLaneQuery = `
		UPDATE sb_leg SET
			lease_owner = CASE WHEN lease_owner = $1 OR lease_until < $2 THEN $1 ELSE lease_owner END,
			lease_until = CASE WHEN lease_owner = $1 OR lease_until < $2 THEN $3 ELSE lease_until END,
			foreign_seq = CASE WHEN lease_owner = $1 OR lease_until < $2 OR foreign_seq > $4 THEN foreign_seq ELSE $4 END
		WHERE network=$5 AND chat_id=$6
		RETURNING lease_owner, foreign_seq`
	renewLeasesQuery  = `UPDATE sb_leg SET lease_until=$2 WHERE lease_owner=$1`
	releaseAllQuery   = `UPDATE sb_leg SET lease_owner=NULL, lease_until=0 WHERE lease_owner IS NOT NULL`
	releaseOwnQuery   = `UPDATE sb_leg SET lease_owner=NULL, lease_until=0 WHERE lease_owner=$1`
	pendingLanesQuery = `
		SELECT DISTINCT q.network, q.chat_id, l.lease_owner = $2 AND l.lease_until >= $1, l.foreign_seq FROM sb_queue q
		JOIN sb_leg l ON l.network = q.network AND l.chat_id = q.chat_id
		WHERE l.lease_until < $1 OR l.lease_owner = $2`
	queueDepthQuery = `SELECT COUNT(*) FROM sb_queue`
	queuedQuery     = `SELECT 1 FROM sb_queue WHERE seq=$1`

	// Keyed hashes of expired copies, kept for the redelivery horizon (see
	// expiry.go). The insert is built per batch by insertSeenQuery.
	seenQuery      = `SELECT 1 FROM sb_seen WHERE hash=$1`
	purgeSeenQuery = `DELETE FROM sb_seen WHERE forget_at <= $1`
)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// laneKey names a destination leg, the unit of ordering.
type laneKey = Leg

// item is one queued delivery.
type item struct {
	seq        int64
	conv       ConversationID
	msg        MessageID
	lane       laneKey
	payload    []byte
	attempts   int
	nextAt     time.Time
	acceptedAt time.Time
	expiresAt  time.Time
	// loaded is set for rows read back from the database (recovery, rows
	// queued by another process); they are checked again before delivery,
	// since the read may predate their completion.
	loaded bool
}

func scanItem(row dbutil.Scannable, lane laneKey) (*item, error) {
	var it item
	var next, accepted int64
	var expires sql.NullInt64
	if err := row.Scan(&it.seq, &it.conv, &it.msg, &it.payload, &it.attempts, &next, &accepted, &expires); err != nil {
		return nil, err
	}
	it.lane, it.loaded = lane, true
	it.nextAt, it.acceptedAt = fromMS(next), fromMS(accepted)
	if expires.Valid {
		it.expiresAt = fromMS(expires.Int64)
	}
	return &it, nil
}

// lookupMessageID translates a remote ID on a leg into the core message ID.
func lookupMessageID(ctx context.Context, db *dbutil.Database, leg Leg, remote RemoteID) (MessageID, error) {
	var id MessageID
	err := db.QueryRow(ctx, messageIDQuery, leg.Network, leg.Chat, remote).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: look up message: %w", ErrDatabase, err)
	}
	return id, nil
}

// lookupRemoteID translates a core message ID into its remote ID on a leg.
func lookupRemoteID(ctx context.Context, db *dbutil.Database, msg MessageID, leg Leg) (RemoteID, error) {
	var id RemoteID
	err := db.QueryRow(ctx, remoteIDQuery, msg, leg.Network, leg.Chat).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: look up remote message: %w", ErrDatabase, err)
	}
	return id, nil
}

// seenBefore says whether a copy with this remote ID on this leg expired
// within the redelivery horizon (a keyed hash in sb_seen). It joins the
// transaction in ctx, if any.
func (r *Router) seenBefore(ctx context.Context, leg Leg, remote RemoteID) (bool, error) {
	var one int
	err := r.stmts.queryRow(ctx, r.stmts.seen, r.seal.seenHash(leg, remote)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("%w: look up seen event: %w", ErrDatabase, err)
	}
	return true, nil
}

// knownSource says whether a source event was accepted before: its
// mapping row exists, or it expired within the redelivery horizon.
func (r *Router) knownSource(ctx context.Context, leg Leg, remote RemoteID) (bool, error) {
	if known, err := r.messageID(ctx, leg, remote); err != nil || known != "" {
		return known != "", err
	}
	return r.seenBefore(ctx, leg, remote)
}
