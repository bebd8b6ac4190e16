package matrix

import (
	"context"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// ContactMessage is one message a contact (a ghost) sent in a room.
type ContactMessage struct {
	Sender id.UserID
	At     time.Time
	Body   string
}

// historyPages bounds how far back RecentContactMessages looks.
const historyPages = 5

// RecentContactMessages returns up to n of the latest messages the
// bridge's ghosts (the contacts) sent in room, oldest first, decrypting
// encrypted ones. It reads the room's history as the bot: the bridge
// itself keeps no message text, so this is how a reporter's explicit
// `report with last N` gets its messages. Nothing is stored.
func (c *Connector) RecentContactMessages(ctx context.Context, room id.RoomID, n int) ([]ContactMessage, error) {
	if !c.isRunning() {
		return nil, ErrNotStarted
	}
	ctx = c.mctx(ctx)
	bot := c.as.BotClient()
	var out []ContactMessage
	from := ""
	for page := 0; page < historyPages && len(out) < n; page++ {
		resp, err := bot.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, classify("read room history", err)
		}
		for _, evt := range resp.Chunk {
			if len(out) >= n {
				break
			}
			if !c.IsGhost(evt.Sender) {
				continue
			}
			evt.RoomID = room
			if evt.Type == event.EventEncrypted {
				if c.crypto == nil {
					continue
				}
				if err := evt.Content.ParseRaw(evt.Type); err != nil {
					continue
				}
				decrypted, err := c.crypto.decrypt(ctx, evt)
				if err != nil {
					zerolog.Ctx(ctx).Debug().Err(err).Msg("Could not decrypt a history event for a report")
					continue
				}
				evt = decrypted
			}
			if evt.Type != event.EventMessage {
				continue
			}
			if err := evt.Content.ParseRaw(evt.Type); err != nil && evt.Content.Parsed == nil {
				continue
			}
			msg := evt.Content.AsMessage()
			if msg.RelatesTo != nil && msg.RelatesTo.GetReplaceID() != "" {
				continue // an edit
			}
			out = append(out, ContactMessage{Sender: evt.Sender, At: time.UnixMilli(evt.Timestamp), Body: msg.Body})
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	slices.Reverse(out)
	return out, nil
}
