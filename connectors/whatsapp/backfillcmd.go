package whatsapp

import (
	"context"
	"errors"
	"strconv"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// Conversations is what `backfill` needs of the router to find the
// WhatsApp chat of a portal; *bridge.Router has it.
type Conversations interface {
	ConversationOf(ctx context.Context, leg bridge.Leg) (bridge.ConversationID, error)
	Legs(ctx context.Context, conv bridge.ConversationID) ([]bridge.Leg, error)
}

var _ Conversations = (*bridge.Router)(nil)

// BackfillCommand is `backfill <count>`, answered by c (nil: WhatsApp is
// not configured) with convs to find the portal's WhatsApp chat.
func BackfillCommand(c *Connector, convs Conversations) commands.Command {
	run := NotConfiguredCommand
	if c != nil {
		run = func(ctx context.Context, req *commands.Request) string { return c.backfillCommand(ctx, convs, req) }
	}
	return commands.Command{
		Name: "backfill", Usage: "backfill <count>",
		Help:  "in a WhatsApp portal: ask your phone for up to <count> earlier messages of this chat (shown in Matrix only)",
		Level: commands.LevelUser, Args: backfillArgs, Run: run,
	}
}

func backfillArgs(req *commands.Request) error {
	if len(req.Args) != 1 {
		return commands.ErrUsage
	}
	if n, err := strconv.Atoi(req.Args[0]); err != nil || n < 1 {
		return commands.ErrUsage
	}
	return nil
}

// Answers of `backfill`.
const (
	backfillOffAnswer      = "History backfill is turned off on this bridge (whatsapp.backfill.enabled)."
	backfillNotPortal      = "Send `backfill <count>` in a WhatsApp portal: this room has no WhatsApp chat."
	backfillRelayAnswer    = "This chat goes through the bridge's relay account, which never backfills."
	backfillNotOwnerAnswer = "Only the person whose WhatsApp this chat belongs to can ask for its history."
	backfillNoLoginAnswer  = "Your WhatsApp is not logged in; send `login whatsapp` first."
	backfillNoAnchorAnswer = "The bridge knows no message of this chat yet to ask for what came before it; try again after the next message."
)

// backfillCommand asks the phone of the portal's account for count
// messages before the oldest the bridge knows of (an on-demand history
// sync); the phone answers with a history sync that handleHistorySync
// bridges like the first one (into existing portals only).
func (c *Connector) backfillCommand(ctx context.Context, convs Conversations, req *commands.Request) string {
	if !c.cfg.Backfill.Enabled {
		return backfillOffAnswer
	}
	count, _ := strconv.Atoi(req.Args[0])
	capped := ""
	if limit := c.cfg.Backfill.MaxMessagesPerChat; count > limit {
		count, capped = limit, " (this bridge's limit)"
	}
	chat, ok, err := c.portalChat(ctx, convs, req.Room)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to find a portal's WhatsApp chat")
		return "The bridge could not look this room up; try again later."
	} else if !ok {
		return backfillNotPortal
	}
	row, err := c.loadChat(ctx, chat)
	if errors.Is(err, ErrUnknownChat) {
		return backfillNotPortal
	} else if err != nil {
		return "The bridge could not look this room up; try again later."
	}
	switch {
	case row.account == RelayAccount:
		return backfillRelayAnswer
	case row.account != req.User.ID:
		return backfillNotOwnerAnswer
	}
	c.mu.Lock()
	l := c.logins[row.account]
	c.mu.Unlock()
	if !l.usable() || l.client == nil {
		return backfillNoLoginAnswer
	}
	hc, ok := l.client.(historyClient)
	if !ok {
		return "This WhatsApp client cannot ask for history."
	}
	anchor, ok, err := c.oldestMessage(ctx, chat, row.jid)
	if err != nil {
		return "The bridge could not look this room up; try again later."
	} else if !ok {
		return backfillNoAnchorAnswer
	}
	msg := hc.BuildHistorySyncRequest(&anchor, count)
	if _, err = l.client.SendMessage(ctx, l.jid.ToNonAD(), msg, whatsmeow.SendRequestExtra{Peer: true}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(errors.New(scrub(err.Error()))).Str("chat", string(chat)).Msg("Failed to ask the phone for WhatsApp history")
		return "WhatsApp did not take the request; try again later."
	}
	return "Asked your phone for up to " + strconv.Itoa(count) + capped + " earlier messages of this chat. " +
		"They appear here, at their WhatsApp time, once your phone answers (it must be online); only Matrix receives them."
}

// portalChat is the WhatsApp chat of the conversation holding the Matrix
// room, or ok false.
func (c *Connector) portalChat(ctx context.Context, convs Conversations, room bridge.ChatID) (bridge.ChatID, bool, error) {
	conv, err := convs.ConversationOf(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: room})
	if errors.Is(err, bridge.ErrUnknownLeg) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	legs, err := convs.Legs(ctx, conv)
	if err != nil {
		return "", false, err
	}
	for _, l := range legs {
		if l.Network == bridge.NetworkWhatsApp {
			return l.Chat, true, nil
		}
	}
	return "", false, nil
}
