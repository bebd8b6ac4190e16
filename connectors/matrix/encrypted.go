package matrix

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// undecryptedBudget bounds the handling of one kept event once its room
// key has arrived.
const undecryptedBudget = 30 * time.Second

// Notices for encrypted messages the bridge could not read.
const (
	noticeNoCrypto = "⚠️ Your encrypted message was not delivered: this bridge was built without end-to-end encryption."
	noticeNoKey    = "⚠️ Your encrypted message was not delivered: the bridge did not receive the key for it."
	noticeBadEvent = "⚠️ Your encrypted message was not delivered: the bridge could not decrypt it."
	noticeTooMany  = "⚠️ Your encrypted message was not delivered: too many encrypted messages in this room are waiting for their keys."
)

// handleEncrypted handles an m.room.encrypted event of a transaction
// without ever waiting for its room key: an event that decrypts now is
// handled now; one whose key has not arrived (or that this process cannot
// decrypt because another process owns the bot device, or the machine is
// not started) is kept in the database and handled by the owner of the
// bot device when the key arrives (see retryUndecrypted). An event the
// bridge cannot decrypt at all is reported to its sender once.
func (c *Connector) handleEncrypted(ctx context.Context, evt *event.Event) error {
	c.mu.Lock()
	c.crypted[evt.RoomID] = true
	c.mu.Unlock()
	if c.crypto == nil {
		return c.tellUndecryptable(ctx, evt, noticeNoCrypto)
	}
	content, ok := evt.Content.Parsed.(*event.EncryptedEventContent)
	if !ok || content.Algorithm != id.AlgorithmMegolmV1 || content.SessionID == "" {
		zerolog.Ctx(ctx).Debug().Msg("Encrypted event is not a Megolm event")
		return c.tellUndecryptable(ctx, evt, noticeBadEvent)
	}
	// An event dropped before (its deadline passed) stays dropped when
	// the homeserver sends it again.
	if told, err := c.exists(ctx, eventSeenQuery, undecryptableKey(evt.ID)); err != nil || told {
		return err
	}
	if c.cs.started.Load() {
		// Events of a room with kept events wait behind them, in order.
		waiting, err := c.exists(ctx, undecryptedRoomQuery, evt.RoomID)
		if err != nil {
			return err
		}
		if !waiting {
			decrypted, err := c.crypto.decrypt(ctx, evt)
			switch {
			case err == nil:
				return c.handleDecrypted(ctx, decrypted)
			case !errors.Is(err, errNoSession) && !errors.Is(err, ErrEncryptionNotReady):
				zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to decrypt event")
				return c.tellUndecryptable(ctx, evt, noticeBadEvent)
			}
		}
	}
	return c.keepUndecrypted(ctx, evt, content)
}

// handleDecrypted handles what an encrypted event held.
func (c *Connector) handleDecrypted(ctx context.Context, decrypted *event.Event) error {
	decrypted.Mautrix.WasEncrypted = true
	return c.handleEvent(ctx, decrypted)
}

func undecryptableKey(evt id.EventID) string { return string(evt) + "/undecryptable" }

// tellUndecryptable tells the sender of an encrypted event, once, that
// it was not delivered.
func (c *Connector) tellUndecryptable(ctx context.Context, evt *event.Event, notice string) error {
	won, err := c.claim(ctx, undecryptableKey(evt.ID))
	if err != nil || !won {
		return err
	}
	c.sendNotice(ctx, evt.RoomID, evt.ID, notice)
	return nil
}
