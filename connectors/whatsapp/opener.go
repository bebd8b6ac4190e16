package whatsapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

var (
	_ bridge.PhoneChatOpener  = (*Connector)(nil)
	_ bridge.PhoneChatLister  = (*Connector)(nil)
	_ bridge.PhoneReacher     = (*Connector)(nil)
	_ bridge.PhoneGroupOpener = (*Connector)(nil)
)

// Reaches implements bridge.PhoneReacher: whether phone has WhatsApp, asked
// through owner's own login or else the relay account. Answers are cached
// under a keyed hash of the number for at most retention.metadata (and a
// day). Without a usable login it answers false.
func (c *Connector) Reaches(ctx context.Context, owner string, phone string) (bool, error) {
	if err := readNumber(&phone); err != nil {
		return false, err
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

// OpenPhoneChat implements bridge.PhoneChatOpener: the WhatsApp chat with
// phone of owner's own login, or else of the relay account. A number
// without WhatsApp is refused (ErrNotOnWhatsApp). The contact is returned
// as its pseudonym (the same one SMS uses).
func (c *Connector) OpenPhoneChat(ctx context.Context, owner string, phone string, _ bridge.ConversationID) (bridge.ChatID, bridge.Sender, error) {
	if err := readNumber(&phone); err != nil {
		return "", bridge.Sender{}, err
	}
	account, _, jid, err := c.lookup(ctx, owner, phone)
	if err != nil {
		return "", bridge.Sender{}, err
	}
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

// OpenPhoneGroup implements bridge.PhoneGroupOpener: when the relay
// account's one chat with phone is in another user's conversation, the
// relay creates a WhatsApp group named name (cut to WhatsApp's 25
// characters) with the contact as its only other member, for conversation
// conv alone. The group is recorded under the number's keyed hash, so
// ChatsReaching lists it. If WhatsApp did not add the contact (their
// privacy settings, usually), the relay leaves the group, nothing is
// recorded, and the answer is ErrContactNotAdded. A user with their own
// login gets ErrGroupNeedsRelay: their 1:1 chats are theirs alone, so
// another user's conversation cannot hold them.
func (c *Connector) OpenPhoneGroup(ctx context.Context, owner string, phone string, conv bridge.ConversationID, name string) (bridge.ChatID, bridge.Sender, error) {
	if err := readNumber(&phone); err != nil {
		return "", bridge.Sender{}, err
	}
	account, l, jid, err := c.lookup(ctx, owner, phone)
	if err != nil {
		return "", bridge.Sender{}, err
	}
	if account != RelayAccount {
		return "", bridge.Sender{}, ErrGroupNeedsRelay
	}
	log := zerolog.Ctx(ctx).With().Str("account", c.accountRef(account)).Str("conversation", string(conv)).Logger()
	info, err := l.client.CreateGroup(ctx, whatsmeow.ReqCreateGroup{Name: groupSubject(name), Participants: []types.JID{jid.ToNonAD()}})
	if err != nil {
		return "", bridge.Sender{}, fmt.Errorf("create WhatsApp group: %w", classify(err))
	}
	group := info.JID.ToNonAD()
	leave := func(why string) {
		if lerr := l.client.LeaveGroup(ctx, group); lerr != nil {
			log.Warn().Err(scrubErr(lerr)).Str("reason", why).Msg("Failed to leave a WhatsApp group the relay just created")
		}
	}
	if !contactAdded(info) {
		leave("contact not added")
		log.Info().Msg("WhatsApp did not add the contact to a relay group; left it")
		return "", bridge.Sender{}, ErrContactNotAdded
	}
	chat, err := c.recordChat(ctx, account, group, c.keys.numberHash(phone))
	if err != nil {
		leave("not recorded")
		return "", bridge.Sender{}, err
	}
	log.Info().Str("chat", string(chat)).Msg("Relay created a WhatsApp group for a conversation")
	return chat, c.pseudo.Phone(phone), nil
}

// lookup finds the account that carries owner's chats (their own login,
// else the relay), connected, and phone's WhatsApp JID through it. The
// answer is cached for Reaches. A number without WhatsApp is refused with
// ErrNotOnWhatsApp. phone is in E.164 (the callers read it with readNumber).
func (c *Connector) lookup(ctx context.Context, owner string, phone string) (string, *login, types.JID, error) {
	account := c.accountFor(owner)
	if account == "" {
		return "", nil, types.EmptyJID, ErrNotLoggedIn
	}
	l := c.loginOf(account)
	if l == nil || !l.client.IsConnected() {
		return "", nil, types.EmptyJID, ErrNotConnected
	}
	resp, err := l.client.IsOnWhatsApp(ctx, []string{phone})
	if err != nil {
		return "", nil, types.EmptyJID, classify(err)
	}
	on := len(resp) > 0 && resp[0].IsIn && !resp[0].JID.IsEmpty()
	if _, err := c.db.Exec(ctx, upsertReachQuery, c.keys.numberHash(phone), on, c.now().UnixMilli()); err != nil {
		c.log.Warn().Err(err).Msg("Failed to cache WhatsApp reachability")
	}
	if !on {
		return "", nil, types.EmptyJID, ErrNotOnWhatsApp
	}
	return account, l, resp[0].JID, nil
}

// maxSubjectRunes is WhatsApp's limit for a group subject.
const maxSubjectRunes = 25

// groupSubject is name cut to WhatsApp's limit, without a number.
func groupSubject(name string) string {
	name = phone.Redact(strings.TrimSpace(name))
	if r := []rune(name); len(r) > maxSubjectRunes {
		name = strings.TrimSpace(string(r[:maxSubjectRunes-1])) + "…"
	}
	return name
}

// contactAdded reports whether WhatsApp added the contact to a group the
// relay just created with them alone: some member besides the creator,
// and no member with an error (WhatsApp answers a privacy refusal with a
// per-participant error, and perhaps an invitation the bridge does not
// send).
func contactAdded(info *types.GroupInfo) bool {
	added := false
	for _, p := range info.Participants {
		if p.Error != 0 {
			return false
		}
		if p.IsSuperAdmin || sameUser(p.JID, info.OwnerJID) || sameUser(p.JID, info.OwnerPN) {
			continue
		}
		added = true
	}
	return added
}

func sameUser(a, b types.JID) bool {
	return !a.IsEmpty() && !b.IsEmpty() && a.User == b.User && a.Server == b.Server
}

// ChatsReaching implements bridge.PhoneChatLister: the WhatsApp chats (of
// any account) with that number.
func (c *Connector) ChatsReaching(ctx context.Context, phone string) ([]bridge.ChatID, error) {
	if err := readNumber(&phone); err != nil {
		return nil, err
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
