package sms

import (
	"context"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// OpenPhoneChat returns the SMS chat through which conversation conv
// reaches phone (see ChatFor), and the contact as a pseudonymous sender.
// It makes the connector a phone-number opener for `start +N`.
func (c *Connector) OpenPhoneChat(ctx context.Context, _ string, phone string, conv bridge.ConversationID) (bridge.ChatID, bridge.Sender, error) {
	chat, err := c.ChatFor(ctx, phone, conv)
	if err != nil {
		return "", bridge.Sender{}, err
	}
	e164, _, err := readNumber(phone)
	if err != nil {
		return "", bridge.Sender{}, err
	}
	id, name := c.keys.pseudonym(e164)
	return chat, bridge.Sender{ID: bridge.UserID(id), DisplayName: name}, nil
}

// ChatsReaching lists the SMS chats (in any conversation) that reach phone.
func (c *Connector) ChatsReaching(ctx context.Context, phone string) ([]bridge.ChatID, error) {
	e164, _, err := readNumber(phone)
	if err != nil {
		return nil, err
	}
	rows, err := c.db.Query(ctx, contactChatsQuery, c.keys.contactHash(e164))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bridge.ChatID
	for rows.Next() {
		var chat bridge.ChatID
		var pool string
		var conv bridge.ConversationID
		if err = rows.Scan(&chat, &pool, &conv); err != nil {
			return nil, err
		}
		out = append(out, chat)
	}
	return out, rows.Err()
}
