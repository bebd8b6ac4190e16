package whatsapp

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// redacter is the part of the Matrix side that removes an event (the
// command that named a number); *matrix.Connector has it.
type redacter interface {
	Redact(ctx context.Context, room id.RoomID, evt id.EventID, reason string) error
}

// NewChatGate decides whether a user may bring someone new into a chat
// (the safety service's new-chat limit and suspensions, as `start` has);
// its error's text is told to the user.
type NewChatGate func(ctx context.Context, user string, network bridge.NetworkID) error

// InviteCommand is `invite +N` in a WhatsApp group portal, answered by c
// (nil: WhatsApp is not configured) with convs to find the portal's
// WhatsApp chat: the portal owner's own WhatsApp adds the number to the
// group. gate (nil: none) counts each invite as a new chat, as `start`
// does, so a user cannot add strangers to groups faster than they could
// write to them. The command's message is redacted first (it named a
// number), and nothing the bridge shows names it; the contact's ghost
// joins when WhatsApp reports them in the group.
func InviteCommand(c *Connector, convs Conversations, gate NewChatGate) commands.Command {
	run := NotConfiguredCommand
	if c != nil {
		run = func(ctx context.Context, req *commands.Request) string { return c.inviteCommand(ctx, convs, gate, req) }
	}
	return commands.Command{
		Name: "invite", Usage: "invite +<phone number>",
		Help:  "in a WhatsApp group portal of your own WhatsApp: add that number to the group (your message naming it is removed)",
		Level: commands.LevelUser, Args: commands.PhoneArg, Run: run,
	}
}

// Answers of `invite`.
const (
	inviteNotPortal      = "Send `invite +<number>` in the portal of a WhatsApp group: this room has none."
	inviteNotGroup       = "This WhatsApp chat is not a group; `start +<number>` opens a chat of its own with someone."
	inviteRelayAnswer    = "This group goes through the bridge's relay account, which adds nobody to groups; log in your own WhatsApp with `login whatsapp`."
	inviteNotOwnerAnswer = "Only the person whose WhatsApp this group belongs to can add people to it."
	inviteNoLoginAnswer  = "Your WhatsApp is not logged in; send `login whatsapp` first."
	inviteNotOnWhatsApp  = "That number is not on WhatsApp, so it cannot join a WhatsApp group. `start +<number>` reaches it another way (SMS after `sms on`)."
	inviteAddedAnswer    = "Added them to the WhatsApp group; they appear here once WhatsApp confirms it."
	invitePrivacyAnswer  = "WhatsApp did not let you add them (their privacy settings allow only their contacts to add them); send them the group's invite link from your phone."
	inviteAlreadyAnswer  = "They are already in the WhatsApp group."
	inviteRetryAnswer    = "The bridge could not do that right now; try again later."
)

func (c *Connector) inviteCommand(ctx context.Context, convs Conversations, gate NewChatGate, req *commands.Request) string {
	log := zerolog.Ctx(ctx)
	if req.Event != "" {
		c.mu.Lock()
		mx := c.mx
		c.mu.Unlock()
		if r, ok := mx.(redacter); ok {
			if err := r.Redact(ctx, id.RoomID(req.Room), id.EventID(req.Event), "it named a phone number"); err != nil {
				log.Warn().Err(err).Msg("Could not redact an invite command")
			}
		}
	}
	chat, ok, err := c.portalChat(ctx, convs, req.Room)
	if err != nil {
		log.Error().Err(err).Msg("Failed to find a portal's WhatsApp chat")
		return inviteRetryAnswer
	} else if !ok {
		return inviteNotPortal
	}
	row, err := c.loadChat(ctx, chat)
	switch {
	case errors.Is(err, ErrUnknownChat):
		return inviteNotPortal
	case err != nil:
		return inviteRetryAnswer
	case !row.group:
		return inviteNotGroup
	case row.account == RelayAccount:
		return inviteRelayAnswer
	case row.account != req.User.ID:
		return inviteNotOwnerAnswer
	}
	l := c.loginOf(row.account)
	if !l.usable() || l.client == nil {
		return inviteNoLoginAnswer
	}
	gc, ok := l.client.(groupClient)
	if !ok {
		return "This WhatsApp client cannot change groups."
	}
	if gate != nil {
		if err := gate(ctx, req.User.ID, bridge.NetworkWhatsApp); err != nil {
			// As `start` tells it: a suspension or the limit and when to
			// try again (numbers redacted, should one be in an error).
			log.Warn().Str("error", phone.Redact(err.Error())).Msg("Invite refused by the new-chat gate")
			return "Not added: " + phone.Redact(err.Error()) + "."
		}
	}
	resp, err := l.client.IsOnWhatsApp(ctx, []string{req.Phone})
	if err != nil {
		log.Warn().Err(scrubErr(err)).Msg("Could not check whether a number is on WhatsApp")
		return inviteRetryAnswer
	}
	if len(resp) == 0 || !resp[0].IsIn || resp[0].JID.IsEmpty() {
		return inviteNotOnWhatsApp
	}
	res, err := gc.UpdateGroupParticipants(ctx, row.jid, []types.JID{resp[0].JID}, whatsmeow.ParticipantChangeAdd)
	if err != nil {
		if errors.Is(err, whatsmeow.ErrIQForbidden) || errors.Is(err, whatsmeow.ErrIQNotAuthorized) {
			return "WhatsApp refused: " + ErrGroupChangeRefused.Error() + "."
		}
		log.Warn().Err(scrubErr(err)).Str("chat", string(chat)).Msg("Could not add a member to a WhatsApp group")
		return inviteRetryAnswer
	}
	for _, p := range res {
		switch p.Error {
		case 0:
		case 403:
			return invitePrivacyAnswer
		case 409:
			return inviteAlreadyAnswer
		default:
			return "WhatsApp refused: " + ErrGroupChangeRefused.Error() + "."
		}
	}
	log.Info().Str("chat", string(chat)).Msg("Added a member to a WhatsApp group")
	return inviteAddedAnswer
}
