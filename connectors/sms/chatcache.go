package sms

import (
	"context"
	"errors"
	"sync"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// maxOpenChats bounds the chats kept opened in memory; a full cache
// starts over.
const maxOpenChats = 10000

// openChat is what a send needs from a chat's row, opened: the contact's
// number (decrypted and parsed once, not for every message) and the
// hashes. None of it changes for a chat ID (the ID is derived from the
// contact, the pool number and the conversation), and rows are never
// deleted, so the cache needs no invalidation. Numbers stay in memory
// only.
type openChat struct {
	contactHash, poolHash string
	to, region            string
}

// openChats caches openChat by chat ID.
type openChats struct {
	mu sync.Mutex
	m  map[bridge.ChatID]*openChat
}

func (o *openChats) get(chat bridge.ChatID) *openChat {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[chat]
}

func (o *openChats) put(chat bridge.ChatID, oc *openChat) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxOpenChats {
		o.m = make(map[bridge.ChatID]*openChat)
	}
	o.m[chat] = oc
}

// openChatFor loads and opens a chat's row, or returns it from memory.
// Errors are the router's: an unknown chat or a number that cannot be
// opened or read is permanent.
func (c *Connector) openChatFor(ctx context.Context, chat bridge.ChatID) (*openChat, error) {
	if oc := c.opened.get(chat); oc != nil {
		return oc, nil
	}
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		if errors.Is(err, ErrUnknownChat) {
			return nil, bridge.Permanent(err)
		}
		return nil, err
	}
	to, err := c.keys.open(row.contactEnc, row.contactHash)
	if err != nil {
		return nil, bridge.Permanent(err)
	}
	_, region, err := readNumber(to)
	if err != nil {
		return nil, bridge.Permanent(err)
	}
	oc := &openChat{contactHash: row.contactHash, poolHash: row.poolHash, to: to, region: region}
	c.opened.put(chat, oc)
	return oc, nil
}
