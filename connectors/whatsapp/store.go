package whatsapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
)

const (
	loginsQuery      = `SELECT account, jid_enc, state FROM sb_whatsapp_login`
	upsertLoginQuery = `
		INSERT INTO sb_whatsapp_login (account, jid_enc, state, created_at) VALUES ($1, $2, 'ok', $3)
		ON CONFLICT (account) DO UPDATE SET jid_enc=excluded.jid_enc, state='ok', created_at=excluded.created_at`
	loginStateQuery  = `UPDATE sb_whatsapp_login SET state=$2 WHERE account=$1`
	deleteLoginQuery = `DELETE FROM sb_whatsapp_login WHERE account=$1`
	deleteChatsQuery = `DELETE FROM sb_whatsapp_chat WHERE account=$1`

	chatQuery       = `SELECT account, jid_enc, is_group, timer_ms, contact_hash, contact_left FROM sb_whatsapp_chat WHERE chat_id=$1`
	insertChatQuery = `
		INSERT INTO sb_whatsapp_chat (chat_id, account, jid_enc, contact_hash, is_group, timer_ms, created_at)
		VALUES ($1, $2, $3, $4, $5, 0, $6)
		ON CONFLICT (chat_id) DO UPDATE SET contact_hash=excluded.contact_hash
		WHERE sb_whatsapp_chat.contact_hash='' AND excluded.contact_hash<>''`
	chatTimerQuery   = `UPDATE sb_whatsapp_chat SET timer_ms=$2 WHERE chat_id=$1`
	contactLeftQuery = `UPDATE sb_whatsapp_chat SET contact_left=$2 WHERE chat_id=$1`
	chatContactQuery = `UPDATE sb_whatsapp_chat SET contact_hash=$2 WHERE chat_id=$1`
	chatsByContact   = `SELECT chat_id FROM sb_whatsapp_chat WHERE contact_hash=$1 ORDER BY created_at`
	reachQuery       = `SELECT on_whatsapp FROM sb_whatsapp_reach WHERE number_hash=$1 AND checked_at >= $2`
	upsertReachQuery = `
		INSERT INTO sb_whatsapp_reach (number_hash, on_whatsapp, checked_at) VALUES ($1, $2, $3)
		ON CONFLICT (number_hash) DO UPDATE SET on_whatsapp=excluded.on_whatsapp, checked_at=excluded.checked_at`
	pruneReachQuery = `DELETE FROM sb_whatsapp_reach WHERE checked_at < $1`
)

// chatRow is one row of sb_whatsapp_chat, with the JID decrypted.
type chatRow struct {
	id      bridge.ChatID
	account string
	jid     types.JID
	group   bool
	timer   int64 // ms
	// contact is the keyed hash of the contact's number ("" for chats
	// not opened with a number, such as groups the user is in).
	contact string
	// contactLeft is true while a relay group's contact is out of it.
	contactLeft bool
}

func (c *Connector) loadChat(ctx context.Context, chat bridge.ChatID) (*chatRow, error) {
	r := chatRow{id: chat}
	var enc string
	err := c.db.QueryRow(ctx, chatQuery, chat).Scan(&r.account, &enc, &r.group, &r.timer, &r.contact, &r.contactLeft)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnknownChat
	} else if err != nil {
		return nil, fmt.Errorf("%w: load whatsapp chat: %w", bridge.ErrDatabase, err)
	}
	plain, err := c.keys.open(enc, string(chat))
	if err != nil {
		return nil, err
	}
	if r.jid, err = types.ParseJID(plain); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoredJID, err)
	}
	return &r, nil
}

// deleteAccount deletes a login, the chats it had (their encrypted JIDs)
// and their message senders and reactions: after a logout nothing of the
// account stays but the router's legs, which refuse to send until the
// account logs in again.
func (c *Connector) deleteAccount(ctx context.Context, account string) error {
	err := c.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		// The chats last: the others find the account's rows through them.
		for _, q := range []string{deleteLoginQuery, deleteAccountSendersQuery, deleteAccountContactReactionsQuery, deleteAccountOwnReactionsQuery, deleteAccountBackfillQuery, deleteAccountPollsQuery, deleteChatsQuery} {
			if _, err := c.db.Exec(ctx, q, account); err != nil {
				return err
			}
		}
		return nil
	})
	c.knownChats.Clear()
	if err != nil {
		return fmt.Errorf("%w: delete whatsapp login: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// ensureChat records the chat of account with jid and returns its ID.
func (c *Connector) ensureChat(ctx context.Context, account string, jid types.JID) (bridge.ChatID, error) {
	contact := ""
	if e164 := userE164(jid); e164 != "" {
		contact = c.keys.numberHash(e164)
	}
	return c.recordChat(ctx, account, jid, contact)
}

// recordChat records the chat of account with jid and returns its ID. A
// contact (a numberHash, or "") is recorded for look-ups unless the chat
// already has one; a group's is given only by OpenPhoneGroup, so it is
// written even when an event recorded the group first.
func (c *Connector) recordChat(ctx context.Context, account string, jid types.JID, contact string) (bridge.ChatID, error) {
	jid = jid.ToNonAD()
	chat := bridge.ChatID(c.keys.chatID(account, jid.String()))
	group := jid.Server == types.GroupServer
	if _, known := c.knownChats.Load(chat); known && (!group || contact == "") {
		return chat, nil
	}
	_, err := c.db.Exec(ctx, insertChatQuery, chat, account, c.keys.seal(jid.String(), string(chat)), contact, group, c.now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("%w: record whatsapp chat: %w", bridge.ErrDatabase, err)
	}
	c.knownChats.Store(chat, struct{}{})
	return chat, nil
}
