package matrix

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Typing notifications and read receipts are ephemeral. A homeserver with
// MSC2409 (Synapse) pushes them in transactions (handleEphemeral,
// astxn.go); Dendrite does not, so there they come from the bot's /sync
// loop, which runs in builds with end-to-end encryption unless
// encryption.appservice is on. Both paths may bring the same one: typing
// is forwarded as a change of the room's typing users, and a receipt has
// one source ID per user and event, which the router deduplicates.

// handleTyping turns the room's list of typing users into start and stop
// events for the other legs.
func (c *Connector) handleTyping(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsTyping()
	now := make(map[id.UserID]bool, len(content.UserIDs))
	for _, user := range content.UserIDs {
		if user != c.bot && !c.IsGhost(user) {
			now[user] = true
		}
	}
	c.mu.Lock()
	before := c.typing[evt.RoomID]
	c.typing[evt.RoomID] = now
	c.mu.Unlock()
	submit := func(user id.UserID, typing bool) {
		err := c.host.Submit(ctx, &bridge.Event{
			Kind:   bridge.KindTyping,
			Source: bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(evt.RoomID)},
			Sender: bridge.Sender{ID: bridge.UserID(user), DisplayName: c.memberName(evt.RoomID, user)},
			Typing: typing,
		})
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Typing not forwarded")
		}
	}
	for user := range now {
		if !before[user] {
			submit(user, true)
		}
	}
	for user := range before {
		if !now[user] {
			submit(user, false)
		}
	}
}

// handleSyncRedaction forwards a redaction seen in the bot's /sync:
// Dendrite does not put redactions in appservice transactions. When a
// homeserver does, the router drops the second copy (same event ID).
func (c *Connector) handleSyncRedaction(ctx context.Context, evt *event.Event) {
	if evt.Sender == c.bot || c.IsGhost(evt.Sender) {
		return
	}
	if err := c.handleRedaction(ctx, evt); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("event_id", evt.ID).Msg("Redaction not forwarded")
	}
}

// handleReceipt forwards read receipts of Matrix users.
func (c *Connector) handleReceipt(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsReceipt()
	zerolog.Ctx(ctx).Trace().Int("events", len(*content)).Stringer("room_id", evt.RoomID).Msg("Receipt event from sync")
	for target, receipts := range *content {
		for receiptType, users := range receipts {
			if receiptType != event.ReceiptTypeRead && receiptType != event.ReceiptTypeReadPrivate {
				continue
			}
			for user, receipt := range users {
				if user == c.bot || c.IsGhost(user) {
					continue
				}
				ts := receipt.Timestamp
				if ts.IsZero() {
					ts = time.Now()
				}
				_, err := c.submit(ctx, &bridge.Event{
					Kind:      bridge.KindReadReceipt,
					Source:    bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(evt.RoomID)},
					SourceID:  bridge.RemoteID("read:" + string(user) + ":" + string(target)),
					Sender:    bridge.Sender{ID: bridge.UserID(user), DisplayName: c.memberName(evt.RoomID, user)},
					Timestamp: ts,
					Target:    bridge.RemoteID(target),
				})
				zerolog.Ctx(ctx).Trace().AnErr("result", err).Str("type", string(receiptType)).Msg("Submitted read receipt")
				if err != nil {
					zerolog.Ctx(ctx).Debug().Err(err).Msg("Read receipt not forwarded")
				}
			}
		}
	}
}
