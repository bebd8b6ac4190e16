package whatsapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// SQL of sb_whatsapp_backfill: the oldest message the bridge knows of in
// each chat (IDs and a time, no content), the anchor of `backfill N`.
const (
	noteOldestQuery = `
		INSERT INTO sb_whatsapp_backfill (chat_id, message_id, sent_at, from_me, noted_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (chat_id) DO UPDATE SET message_id=excluded.message_id, sent_at=excluded.sent_at, from_me=excluded.from_me, noted_at=excluded.noted_at
		WHERE excluded.sent_at < sb_whatsapp_backfill.sent_at`
	oldestQuery                = `SELECT message_id, sent_at, from_me FROM sb_whatsapp_backfill WHERE chat_id=$1`
	pruneBackfillQuery         = `DELETE FROM sb_whatsapp_backfill WHERE noted_at < $1`
	deleteAccountBackfillQuery = `
		DELETE FROM sb_whatsapp_backfill WHERE chat_id IN (SELECT chat_id FROM sb_whatsapp_chat WHERE account=$1)`
)

// noteOldest records info as the chat's oldest known message if it is
// older than the one recorded. Failing only costs `backfill` its anchor,
// so it is logged, not returned.
func (c *Connector) noteOldest(ctx context.Context, chat bridge.ChatID, info types.MessageInfo) {
	if !c.cfg.Backfill.Enabled || info.ID == "" || info.Timestamp.IsZero() {
		return
	}
	if _, err := c.db.Exec(ctx, noteOldestQuery, chat, info.ID, info.Timestamp.UnixMilli(), info.IsFromMe, c.now().UnixMilli()); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to record where a WhatsApp chat's history begins")
	}
}

// noteFirstLive records a live message as the chat's oldest known one the
// first time this process sees the chat (later live messages are newer).
func (c *Connector) noteFirstLive(ctx context.Context, chat bridge.ChatID, info types.MessageInfo) {
	if !c.cfg.Backfill.Enabled {
		return
	}
	if _, seen := c.history.live.LoadOrStore(chat, struct{}{}); seen {
		return
	}
	c.noteOldest(ctx, chat, info)
}

// pruneBackfill deletes history anchors recorded before cutoff (ms,
// retention.metadata ago): `backfill` then starts from the next message.
func (c *Connector) pruneBackfill(ctx context.Context, cutoff int64) {
	if _, err := c.db.Exec(ctx, pruneBackfillQuery, cutoff); err != nil {
		c.log.Warn().Err(err).Msg("Failed to prune WhatsApp history anchors")
	}
}

// oldestMessage is the chat's oldest known message, or ok false.
func (c *Connector) oldestMessage(ctx context.Context, chat bridge.ChatID, jid types.JID) (info types.MessageInfo, ok bool, err error) {
	var ms int64
	err = c.db.QueryRow(ctx, oldestQuery, chat).Scan(&info.ID, &ms, &info.IsFromMe)
	if errors.Is(err, sql.ErrNoRows) {
		return info, false, nil
	} else if err != nil {
		return info, false, fmt.Errorf("%w: load history anchor: %w", bridge.ErrDatabase, err)
	}
	info.Chat, info.IsGroup = jid, jid.Server == types.GroupServer
	info.Timestamp = time.UnixMilli(ms)
	return info, true, nil
}
