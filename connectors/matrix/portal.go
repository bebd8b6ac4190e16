package matrix

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// PortalOptions describe a portal room to create for a Matrix user.
type PortalOptions struct {
	// User is the Matrix user the portal is for; it is invited.
	User id.UserID
	// Network and Contact name the remote participant whose ghost joins
	// the room (Contact.ID is its ID on Network).
	Network bridge.NetworkID
	Contact bridge.Sender
	// Direct marks the room as a direct chat for the user.
	Direct bool
	// Name overrides the room name (by default the contact's display
	// name). A name that looks like a phone number is replaced by the
	// contact's pseudonym.
	Name string
}

// CreatePortal creates a portal room: the bot creates it, invites the user
// and the contact's ghost, and the ghost joins. It returns the room ID, to
// be added as the conversation's Matrix leg (Router.CreateConversation or
// AddLeg). The room's name is the contact's display name, never a number.
func (c *Connector) CreatePortal(ctx context.Context, opts PortalOptions) (bridge.ChatID, error) {
	if !c.isRunning() {
		return "", ErrNotStarted
	}
	if _, _, err := opts.User.Parse(); err != nil || opts.User == "" {
		return "", fmt.Errorf("%w: %q is not a user ID", ErrConfig, opts.User)
	}
	ctx = c.mctx(ctx)
	ghost, err := c.ghostIntent(ctx, opts.Network, opts.Contact)
	if err != nil {
		return "", err
	}
	opaque := GhostOpaque(c.ghostKey, opts.Network, opts.Contact.ID)
	name := opts.Name
	if name == "" {
		name = opts.Contact.DisplayName
	}
	name = SafeDisplayName(name, opaque)
	req := &mautrix.ReqCreateRoom{
		Visibility: "private",
		Preset:     "private_chat",
		Name:       name,
		Invite:     []id.UserID{opts.User, ghost.UserID},
		IsDirect:   opts.Direct,
		// Only the owner (and the bot and its ghosts) may invite: anyone
		// else in the room would speak through the owner's bridged chat.
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users:     map[id.UserID]int{c.bot: 100, ghost.UserID: 50, opts.User: 50},
			InvitePtr: ptrInt(50),
		},
	}
	encrypted := c.cfg.Encryption.Default && c.crypto != nil
	if encrypted {
		req.InitialState = append(req.InitialState, &event.Event{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		})
	}
	resp, err := c.as.BotIntent().CreateRoom(ctx, req)
	if err != nil {
		return "", classify("create portal", err)
	}
	room := resp.RoomID
	c.mu.Lock()
	c.crypted[room] = encrypted
	c.mu.Unlock()
	log := zerolog.Ctx(ctx).With().Stringer("room_id", room).Logger()
	_ = c.as.StateStore.SetMembership(ctx, room, c.bot, event.MembershipJoin)
	if _, err = ghost.JoinRoomByID(ctx, room); err != nil {
		log.Warn().Err(err).Msg("Ghost failed to join new portal; it joins on first message")
	} else {
		_ = c.as.StateStore.SetMembership(ctx, room, ghost.UserID, event.MembershipJoin)
	}
	if err = c.savePortal(ctx, room, &portalInfo{Owner: opts.User, Direct: opts.Direct, Encrypted: encrypted}); err != nil {
		return "", err
	}
	log.Info().Msg("Created portal room")
	return bridge.ChatID(room), nil
}

func ptrInt(v int) *int { return &v }

// sendNotice sends a notice from the bot, as a reply when replyTo is set.
// Failures are logged: a notice is itself the last resort.
func (c *Connector) sendNotice(ctx context.Context, room id.RoomID, replyTo id.EventID, text string) {
	ctx = c.mctx(ctx)
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text, Mentions: &event.Mentions{}}
	if replyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(replyTo)
	}
	typ, payload, err := c.maybeEncrypt(ctx, room, event.EventMessage, content)
	if err == nil {
		_, err = c.as.BotIntent().SendMessageEvent(ctx, room, typ, payload)
	}
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Stringer("room_id", room).Msg("Failed to send notice")
	}
}

// HandleStatus implements bridge.StatusReceiver: with
// appservice.message_status_events every outcome is reported as a
// com.beeper.message_send_status event (sendstatus.go); a message that
// could not be delivered also gets a notice in its room, as a reply to it,
// naming the network and the reason.
func (c *Connector) HandleStatus(ctx context.Context, rep *bridge.StatusReport) {
	room, err := roomID(rep.Source.Chat)
	if err != nil {
		return
	}
	c.queueSendStatus(ctx, room, rep)
	if rep.State != bridge.StateFailed || rep.Kind == bridge.KindReadReceipt || rep.Kind == bridge.KindTyping {
		return
	}
	reason := "unknown error"
	switch {
	case rep.Err == nil:
	case errors.Is(rep.Err, bridge.ErrNotSupported):
		reason = fmt.Sprintf("%s does not support this", rep.Destination.Network)
	default:
		reason = phone.Redact(rep.Err.Error())
	}
	what := map[bridge.Kind]string{
		bridge.KindMessage:  "message",
		bridge.KindEdit:     "edit",
		bridge.KindReaction: "reaction",
		bridge.KindDelete:   "deletion",
		bridge.KindChatInfo: "change",
	}[rep.Kind]
	if what == "" {
		what = string(rep.Kind)
	}
	var replyTo id.EventID
	if rep.Kind == bridge.KindMessage {
		replyTo = id.EventID(rep.SourceID)
	}
	c.sendNotice(ctx, room, replyTo, fmt.Sprintf("⚠️ Your %s was not delivered to %s: %s", what, rep.Destination.Network, reason))
}

// IsEncrypted implements bridge.EncryptionReporter: whether the room has
// m.room.encryption.
func (c *Connector) IsEncrypted(ctx context.Context, chat bridge.ChatID) (bool, error) {
	room, err := roomID(chat)
	if err != nil {
		return false, err
	}
	c.mu.RLock()
	encrypted, known := c.crypted[room]
	c.mu.RUnlock()
	if known {
		// Rooms turn encrypted through an m.room.encryption event, which
		// the transaction handler records.
		return encrypted, nil
	}
	ctx = c.mctx(ctx)
	var content event.EncryptionEventContent
	err = c.as.BotClient().StateEvent(ctx, room, event.StateEncryption, "", &content)
	if err != nil && !errors.Is(err, mautrix.MNotFound) {
		return false, classify("get encryption state", err)
	}
	encrypted = err == nil && content.Algorithm != ""
	c.mu.Lock()
	if !c.crypted[room] {
		c.crypted[room] = encrypted
	}
	encrypted = c.crypted[room]
	c.mu.Unlock()
	return encrypted, nil
}

// Notify posts a notice from the bot in one of the connector's rooms (a
// portal), for things the bridge itself must tell the people there.
func (c *Connector) Notify(ctx context.Context, chat bridge.ChatID, text string) {
	c.sendNotice(ctx, id.RoomID(chat), "", phone.Redact(text))
}
