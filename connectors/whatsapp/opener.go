package whatsapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

var (
	_ matrix.PhoneChatOpener = (*Connector)(nil)
	_ matrix.PhoneChatLister = (*Connector)(nil)
	_ matrix.PhoneReacher    = (*Connector)(nil)
)

// Reaches implements matrix.PhoneReacher: whether phone has WhatsApp, asked
// through owner's own login or else the relay account. Answers are cached
// under a keyed hash of the number for at most retention.metadata (and a
// day). Without a usable login it answers false.
func (c *Connector) Reaches(ctx context.Context, owner string, phone string) (bool, error) {
	if err := config.CheckE164(phone); err != nil {
		return false, ErrInvalidNumber
	}
	hash := c.keys.numberHash(phone)
	var on bool
	err := c.db.QueryRow(ctx, reachQuery, hash, c.now().Add(-c.reachTTL()).UnixMilli()).Scan(&on)
	if err == nil {
		return on, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("%w: %w", bridge.ErrDatabase, err)
	}
	// Ask through a connected login: the owner's, else the relay's.
	var l *login
	for _, account := range []string{owner, RelayAccount} {
		if cand := c.loginOf(account); account != "" && cand.usable() && cand.client.IsConnected() {
			l = cand
			break
		}
	}
	if l == nil {
		return false, nil
	}
	resp, err := l.client.IsOnWhatsApp(ctx, []string{phone})
	if err != nil {
		return false, classify(err)
	}
	on = len(resp) > 0 && resp[0].IsIn
	if _, err = c.db.Exec(ctx, upsertReachQuery, hash, on, c.now().UnixMilli()); err != nil {
		c.log.Warn().Err(err).Msg("Failed to cache WhatsApp reachability")
	}
	return on, nil
}

// OpenPhoneChat implements matrix.PhoneChatOpener: the WhatsApp chat with
// phone of owner's own login, or else of the relay account. A number
// without WhatsApp is refused (ErrNotOnWhatsApp). The contact is returned
// as its pseudonym (the same one SMS uses).
func (c *Connector) OpenPhoneChat(ctx context.Context, owner string, phone string, _ bridge.ConversationID) (bridge.ChatID, bridge.Sender, error) {
	if err := config.CheckE164(phone); err != nil {
		return "", bridge.Sender{}, ErrInvalidNumber
	}
	account := c.accountFor(owner)
	if account == "" {
		return "", bridge.Sender{}, ErrNotLoggedIn
	}
	l := c.loginOf(account)
	if l == nil || !l.client.IsConnected() {
		return "", bridge.Sender{}, ErrNotConnected
	}
	resp, err := l.client.IsOnWhatsApp(ctx, []string{phone})
	if err != nil {
		return "", bridge.Sender{}, classify(err)
	}
	on := len(resp) > 0 && resp[0].IsIn && !resp[0].JID.IsEmpty()
	if _, err := c.db.Exec(ctx, upsertReachQuery, c.keys.numberHash(phone), on, c.now().UnixMilli()); err != nil {
		c.log.Warn().Err(err).Msg("Failed to cache WhatsApp reachability")
	}
	if !on {
		return "", bridge.Sender{}, ErrNotOnWhatsApp
	}
	jid := resp[0].JID
	chat, err := c.ensureChat(ctx, account, jid)
	if err != nil {
		return "", bridge.Sender{}, err
	}
	if e164 := userE164(jid); e164 != "" && e164 != phone {
		// WhatsApp's canonical number differs (a national prefix): look
		// the chat up under both.
		if _, err = c.db.Exec(ctx, chatContactQuery, chat, c.keys.numberHash(phone)); err != nil {
			c.log.Warn().Err(err).Msg("Failed to record the number a WhatsApp chat was opened with")
		}
	}
	return chat, c.pseudo.Phone(phone), nil
}

// ChatsReaching implements matrix.PhoneChatLister: the WhatsApp chats (of
// any account) with that number.
func (c *Connector) ChatsReaching(ctx context.Context, phone string) ([]bridge.ChatID, error) {
	if err := config.CheckE164(phone); err != nil {
		return nil, ErrInvalidNumber
	}
	rows, err := c.db.Query(ctx, chatsByContact, c.keys.numberHash(phone))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bridge.ErrDatabase, err)
	}
	defer rows.Close()
	var out []bridge.ChatID
	for rows.Next() {
		var chat bridge.ChatID
		if err = rows.Scan(&chat); err != nil {
			return nil, err
		}
		out = append(out, chat)
	}
	return out, rows.Err()
}
