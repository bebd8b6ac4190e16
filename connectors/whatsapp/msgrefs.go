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

// Message references: who sent a contact's message in a group (WhatsApp
// needs it to quote, react to or mark read that message) and which
// WhatsApp reaction a contact's (chat, sender, target) is (so that its
// removal deletes what was delivered). Each is an in-memory cache, the
// fast path, in front of a table that outlives a restart. Both tables are
// metadata: rows go after retention.metadata (Prune) and with the login
// (deleteAccount); no body, and the sender's JID only encrypted.
const (
	upsertSenderQuery = `
		INSERT INTO sb_whatsapp_sender (chat_id, message_id, sender_enc, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (chat_id, message_id) DO UPDATE SET sender_enc=excluded.sender_enc, created_at=excluded.created_at`
	senderQuery               = `SELECT sender_enc FROM sb_whatsapp_sender WHERE chat_id=$1 AND message_id=$2`
	pruneSendersQuery         = `DELETE FROM sb_whatsapp_sender WHERE created_at < $1`
	deleteAccountSendersQuery = `
		DELETE FROM sb_whatsapp_sender WHERE chat_id IN (SELECT chat_id FROM sb_whatsapp_chat WHERE account=$1)`

	upsertContactReactionQuery = `
		INSERT INTO sb_whatsapp_contact_reaction (key_hash, chat_id, reaction_id, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key_hash) DO UPDATE SET reaction_id=excluded.reaction_id, created_at=excluded.created_at`
	contactReactionQuery               = `SELECT reaction_id FROM sb_whatsapp_contact_reaction WHERE key_hash=$1`
	deleteContactReactionQuery         = `DELETE FROM sb_whatsapp_contact_reaction WHERE key_hash=$1`
	pruneContactReactionsQuery         = `DELETE FROM sb_whatsapp_contact_reaction WHERE created_at < $1`
	deleteAccountContactReactionsQuery = `
		DELETE FROM sb_whatsapp_contact_reaction WHERE chat_id IN (SELECT chat_id FROM sb_whatsapp_chat WHERE account=$1)`

	insertOwnReactionQuery = `
		INSERT INTO sb_whatsapp_own_reaction (chat_id, reaction_id, target_id, sender_enc, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (chat_id, reaction_id) DO NOTHING`
	ownReactionQuery       = `SELECT target_id, sender_enc FROM sb_whatsapp_own_reaction WHERE chat_id=$1 AND reaction_id=$2`
	deleteOwnReactionQuery = `DELETE FROM sb_whatsapp_own_reaction WHERE chat_id=$1 AND reaction_id=$2`
	// $1: retention.metadata cutoff (0: none), $2: expiry cutoff.
	pruneOwnReactionsQuery = `
		DELETE FROM sb_whatsapp_own_reaction
		WHERE (expires_at IS NULL AND created_at < $1) OR expires_at < $2`
	deleteAccountOwnReactionsQuery = `
		DELETE FROM sb_whatsapp_own_reaction WHERE chat_id IN (SELECT chat_id FROM sb_whatsapp_chat WHERE account=$1)`
)

// ownReactionGrace is how long a sent reaction's row outlives its expiry,
// so that the router's expiry (which retries) still finds it.
const ownReactionGrace = 24 * time.Hour

// ownReactionAD binds a sealed sender to its own-reaction row.
func ownReactionAD(chat bridge.ChatID, reactionID string) string {
	return "own-reaction\x00" + string(chat) + "\x00" + reactionID
}

// rememberOwnReaction records a reaction the bridge sent (reactionID) to
// target, sent by sender, in memory and in the database. A failure to
// store is logged: the reaction went out, only its later removal after a
// restart is lost.
func (c *Connector) rememberOwnReaction(ctx context.Context, chat bridge.ChatID, reactionID string, r reactionOf, expires time.Time) {
	c.reactions.put(reactionID, r)
	var exp any
	if !expires.IsZero() {
		exp = expires.UnixMilli()
	}
	enc := c.keys.seal(r.sender.String(), ownReactionAD(chat, reactionID))
	if _, err := c.db.Exec(ctx, insertOwnReactionQuery, chat, reactionID, r.target, enc, c.now().UnixMilli(), exp); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat", string(chat)).Msg("Failed to record a sent WhatsApp reaction")
	}
}

// ownReaction returns a reaction the bridge sent in chat, from memory or
// else the database; ok is false when it is not one.
func (c *Connector) ownReaction(ctx context.Context, chat bridge.ChatID, reactionID string) (reactionOf, bool, error) {
	if r, ok := c.reactions.get(reactionID); ok {
		return r, true, nil
	}
	var target, enc string
	err := c.db.QueryRow(ctx, ownReactionQuery, chat, reactionID).Scan(&target, &enc)
	if errors.Is(err, sql.ErrNoRows) {
		return reactionOf{}, false, nil
	} else if err != nil {
		return reactionOf{}, false, fmt.Errorf("%w: load sent whatsapp reaction: %w", bridge.ErrDatabase, err)
	}
	plain, err := c.keys.open(enc, ownReactionAD(chat, reactionID))
	var sender types.JID
	if err == nil {
		sender, err = types.ParseJID(plain)
	}
	if err != nil {
		return reactionOf{}, false, bridge.Permanent(fmt.Errorf("%w: %w", ErrStoredJID, scrubErr(err)))
	}
	r := reactionOf{target: target, sender: sender}
	c.reactions.put(reactionID, r)
	return r, true, nil
}

// pruneOwnReactions deletes sent reactions a day past their expiry, and
// those without one recorded before metaCutoff (unix ms; 0: kept).
func (c *Connector) pruneOwnReactions(ctx context.Context, metaCutoff int64) error {
	if _, err := c.db.Exec(ctx, pruneOwnReactionsQuery, metaCutoff, c.now().Add(-ownReactionGrace).UnixMilli()); err != nil {
		return fmt.Errorf("%w: prune sent whatsapp reactions: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// forgetOwnReaction drops a sent reaction once it is removed.
func (c *Connector) forgetOwnReaction(ctx context.Context, chat bridge.ChatID, reactionID string) {
	c.reactions.del(reactionID)
	if _, err := c.db.Exec(ctx, deleteOwnReactionQuery, chat, reactionID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat", string(chat)).Msg("Failed to delete a removed WhatsApp reaction")
	}
}

// senderAD binds a sealed sender to its row.
func senderAD(chat bridge.ChatID, msgID string) string { return string(chat) + "\x00" + msgID }

// storeSender records the sender of a message in a group chat.
func (c *Connector) storeSender(ctx context.Context, chat bridge.ChatID, msgID string, sender types.JID) error {
	if sender.IsEmpty() || msgID == "" {
		return nil
	}
	enc := c.keys.seal(sender.String(), senderAD(chat, msgID))
	if _, err := c.db.Exec(ctx, upsertSenderQuery, chat, msgID, enc, c.now().UnixMilli()); err != nil {
		return fmt.Errorf("%w: record whatsapp message sender: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// loadSender returns the stored sender of a message in a group chat, or
// the empty JID when none is stored (or it is unreadable).
func (c *Connector) loadSender(ctx context.Context, chat bridge.ChatID, msgID string) (types.JID, error) {
	var enc string
	err := c.db.QueryRow(ctx, senderQuery, chat, msgID).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return types.EmptyJID, nil
	} else if err != nil {
		return types.EmptyJID, fmt.Errorf("%w: load whatsapp message sender: %w", bridge.ErrDatabase, err)
	}
	plain, err := c.keys.open(enc, senderAD(chat, msgID))
	var jid types.JID
	if err == nil {
		jid, err = types.ParseJID(plain)
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(scrubErr(err)).Str("chat", string(chat)).Msg("Stored WhatsApp message sender is unreadable")
		return types.EmptyJID, nil
	}
	return jid, nil
}

// rememberContactReaction records that a contact's reaction (key: chat,
// sender, target) is the WhatsApp message reactionID.
func (c *Connector) rememberContactReaction(ctx context.Context, account string, chat bridge.ChatID, key, reactionID string) error {
	c.theirReactions.put(account, key, reactionID)
	_, err := c.db.Exec(ctx, upsertContactReactionQuery, c.keys.reactionKey(account, key), chat, reactionID, c.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("%w: record whatsapp reaction: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// contactReaction returns the WhatsApp message ID of a contact's reaction,
// from memory or else the database; ok is false when neither knows it.
func (c *Connector) contactReaction(ctx context.Context, account, key string) (id string, ok bool, err error) {
	if id, ok = c.theirReactions.get(account, key); ok {
		return id, true, nil
	}
	err = c.db.QueryRow(ctx, contactReactionQuery, c.keys.reactionKey(account, key)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("%w: load whatsapp reaction: %w", bridge.ErrDatabase, err)
	}
	c.theirReactions.put(account, key, id)
	return id, true, nil
}

// forgetContactReaction drops a removed reaction.
func (c *Connector) forgetContactReaction(ctx context.Context, account, key string) error {
	c.theirReactions.del(account, key)
	if _, err := c.db.Exec(ctx, deleteContactReactionQuery, c.keys.reactionKey(account, key)); err != nil {
		return fmt.Errorf("%w: delete whatsapp reaction: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// pruneMessageRefs deletes senders, reactions and poll option hashes recorded before cutoff
// (unix ms).
func (c *Connector) pruneMessageRefs(ctx context.Context, cutoff int64) error {
	for _, q := range []string{pruneSendersQuery, pruneContactReactionsQuery, prunePollsQuery} {
		if _, err := c.db.Exec(ctx, q, cutoff); err != nil {
			return fmt.Errorf("%w: prune whatsapp message metadata: %w", bridge.ErrDatabase, err)
		}
	}
	return nil
}
