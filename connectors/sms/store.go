package sms

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/switchboard-bridge/switchboard/bridge"
)

const (
	chatByIDQuery     = `SELECT contact_hash, contact_enc, pool_hash, conversation_id FROM sb_sms_chat WHERE chat_id=$1`
	chatByConvQuery   = `SELECT chat_id FROM sb_sms_chat WHERE contact_hash=$1 AND conversation_id=$2`
	contactChatsQuery = `
		SELECT chat_id, pool_hash, conversation_id FROM sb_sms_chat
		WHERE contact_hash=$1 AND conversation_id<>''
		ORDER BY last_active_at DESC, created_at DESC`
	routeQuery = `
		SELECT chat_id FROM sb_sms_chat
		WHERE contact_hash=$1 AND pool_hash=$2 AND conversation_id<>''
		ORDER BY last_active_at DESC, created_at DESC LIMIT 1`
	insertChatQuery = `
		INSERT INTO sb_sms_chat (chat_id, contact_hash, contact_enc, pool_hash, conversation_id, created_at, last_active_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (chat_id) DO NOTHING`
	claimChatQuery = `UPDATE sb_sms_chat SET conversation_id=$2, last_active_at=$3 WHERE chat_id=$1`
	// touchChatQuery leaves a row that already holds the time alone (a
	// page and an index entry less to write).
	touchChatQuery    = `UPDATE sb_sms_chat SET last_active_at=$2 WHERE chat_id=$1 AND last_active_at<>$2`
	sharingQuery      = `SELECT conversation_id FROM sb_sms_chat WHERE contact_hash=$1 AND pool_hash=$2 AND conversation_id<>'' AND chat_id<>$3`
	optOutQuery       = `SELECT opted_out FROM sb_sms_optout WHERE contact_hash=$1`
	upsertOptOutQuery = `
		INSERT INTO sb_sms_optout (contact_hash, opted_out, keyword, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (contact_hash) DO UPDATE SET opted_out=excluded.opted_out, keyword=excluded.keyword, updated_at=excluded.updated_at`
	insertSentQuery = `
		INSERT INTO sb_sms_sent (message_sid, delivery_id, part, chat_id, conversation_id, message_id, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_sid) DO NOTHING`
	// insertSentTouchQuery is insertSentQuery and touchChatQuery in one
	// statement (PostgreSQL only: SQLite has no writable CTE). The UPDATE
	// runs whether or not the row is inserted, as touchChatQuery would.
	insertSentTouchQuery = `
		WITH touched AS (UPDATE sb_sms_chat SET last_active_at=$8 WHERE chat_id=$4 AND last_active_at<>$8)
		INSERT INTO sb_sms_sent (message_sid, delivery_id, part, chat_id, conversation_id, message_id, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_sid) DO NOTHING`
	// sendStateQuery gives the contact's opt-out (part -1) and the parts
	// of a delivery already sent, in one round trip.
	sendStateQuery = `
		SELECT -1, '', opted_out FROM sb_sms_optout WHERE contact_hash=$1
		UNION ALL
		SELECT part, message_sid, false FROM sb_sms_sent WHERE delivery_id=$2`
	sentBySIDQuery  = `SELECT conversation_id, message_id, chat_id, status FROM sb_sms_sent WHERE message_sid=$1`
	updateSentQuery = `UPDATE sb_sms_sent SET status=$2 WHERE message_sid=$1`
	pruneSentQuery  = `DELETE FROM sb_sms_sent WHERE created_at < $1`
)

// chatRow is one row of sb_sms_chat.
type chatRow struct {
	contactHash, contactEnc, poolHash string
	conversation                      bridge.ConversationID
}

func (c *Connector) loadChat(ctx context.Context, chat bridge.ChatID) (*chatRow, error) {
	var r chatRow
	err := c.db.QueryRow(ctx, chatByIDQuery, chat).Scan(&r.contactHash, &r.contactEnc, &r.poolHash, &r.conversation)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnknownChat
	} else if err != nil {
		return nil, fmt.Errorf("%w: load sms chat: %w", bridge.ErrDatabase, err)
	}
	return &r, nil
}

// optedOut tells whether a contact opted out: from memory on SQLite
// (sendstate.go), else from the database.
func (c *Connector) optedOut(ctx context.Context, contactHash string) (bool, error) {
	if !c.local {
		return c.loadOptOut(ctx, contactHash)
	}
	out, ok, gen := c.optOuts.get(contactHash)
	if ok {
		return out, nil
	}
	out, err := c.loadOptOut(ctx, contactHash)
	if err == nil {
		c.optOuts.put(contactHash, out, gen)
	}
	return out, err
}

func (c *Connector) loadOptOut(ctx context.Context, contactHash string) (bool, error) {
	var out bool
	err := c.db.QueryRow(ctx, optOutQuery, contactHash).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("%w: load opt-out: %w", bridge.ErrDatabase, err)
	}
	return out, nil
}

func (c *Connector) setOptOut(ctx context.Context, contactHash string, out bool, keyword string) error {
	_, err := c.db.Exec(ctx, upsertOptOutQuery, contactHash, out, keyword, c.now().UnixMilli())
	c.optOuts.forget(contactHash)
	if err != nil {
		return fmt.Errorf("%w: record opt-out: %w", bridge.ErrDatabase, err)
	}
	return nil
}

var sqlNoRows = sql.ErrNoRows
