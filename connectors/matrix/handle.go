package matrix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// handleEvent handles one event of a transaction. It returns an error only
// when the homeserver should retry the transaction (the router or the
// database is unavailable); events the bridge cannot use are logged and
// skipped.
func (c *Connector) handleEvent(ctx context.Context, evt *event.Event) error {
	perr := prepareEvent(ctx, evt)
	// Str, not Stringer: the same text without boxing each ID.
	log := zerolog.Ctx(ctx).With().
		Str("event_id", string(evt.ID)).
		Str("room_id", string(evt.RoomID)).
		Str("event_type", evt.Type.Type).
		Logger()
	ctx = log.WithContext(ctx)
	log.Trace().Msg("Handling event")
	if perr != nil {
		// Content of a known type that does not parse: nothing to use.
		log.Debug().Msg("Malformed event content; skipped")
		return nil
	}
	if evt.StateKey != nil {
		mautrix.UpdateStateStore(ctx, c.as.StateStore, evt)
	}
	switch evt.Type {
	case event.StateMember:
		c.spaceMember(ctx, evt) // space.go
		if err := c.handleKick(ctx, evt); err != nil {
			return err
		}
		return c.handleMember(ctx, evt)
	case event.StateEncryption:
		c.mu.Lock()
		c.crypted[evt.RoomID] = true
		c.mu.Unlock()
		return nil
	case event.StateBeeperDisappearingTimer:
		return c.handleTimerState(ctx, evt)
	}
	if c.ownEcho(evt) {
		// Our own sends, echoed back.
		return nil
	}
	switch evt.Type {
	case event.EventMessage, event.EventSticker:
		return c.handleMessage(ctx, evt)
	case event.EventReaction:
		return c.handleReaction(ctx, evt)
	case event.EventRedaction:
		return c.handleRedaction(ctx, evt)
	case event.EventEncrypted:
		return c.handleEncrypted(ctx, evt)
	case event.StateRoomName, event.StateTopic, event.StateRoomAvatar:
		return c.handleChatState(ctx, evt) // groupinfo.go
	}
	if isPollEvent(evt.Type) {
		return c.handlePoll(ctx, evt) // content_poll.go
	}
	return nil
}

// ownEcho reports whether evt is one of the bridge's own sends echoed
// back: from the bot, a ghost, or a double puppet (isPuppetEcho).
func (c *Connector) ownEcho(evt *event.Event) bool {
	return evt.Sender == c.bot || c.IsGhost(evt.Sender) || (mayMarkPuppet(evt) && c.isPuppetEcho(evt))
}

// puppetKey is the content key marking a double puppet's sends.
var puppetKey = []byte(appservice.DoublePuppetKey)

// mayMarkPuppet reports whether evt's content can carry the double-puppet
// key, so isPuppetEcho need not decode the content of every message (it
// did, twice for a batched one): content that neither holds the key as
// such nor any \u escape (which could spell it) does not. Content
// already decoded is isPuppetEcho's to look at.
func mayMarkPuppet(evt *event.Event) bool {
	raw := evt.Content.VeryRaw
	return evt.Content.Raw != nil || bytes.Contains(raw, puppetKey) || bytes.Contains(raw, []byte(`\u`))
}

// submit hands an event to the router. Events for rooms that are no
// conversation's leg, or that refer to messages the bridge never saw, are
// not errors for the homeserver.
func (c *Connector) submit(ctx context.Context, evt *bridge.Event) (unknownLeg bool, err error) {
	log := zerolog.Ctx(ctx)
	allowed, err := c.admitSender(ctx, evt)
	if err != nil {
		return false, err
	} else if !allowed {
		log.Debug().Str("kind", string(evt.Kind)).Msg("Sender may not use the bridge; not bridged")
		return false, nil
	}
	if deferSubmit(ctx, evt) {
		// Accepted with the transaction's batch (batch.go).
		return false, nil
	}
	return c.submitResult(ctx, evt, c.host.Submit(ctx, evt))
}

// submitResult turns the router's answer to a submitted event into
// submit's.
func (c *Connector) submitResult(ctx context.Context, evt *bridge.Event, err error) (unknownLeg bool, _ error) {
	log := zerolog.Ctx(ctx)
	log.Trace().AnErr("result", err).Str("kind", string(evt.Kind)).Msg("Submitted event")
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, bridge.ErrUnknownLeg):
		return true, nil
	case errors.Is(err, bridge.ErrRefused):
		// Refused by the bridge's safety rules (a suspension, a rate
		// limit): the sender is told, in the room, as a reply.
		log.Debug().Err(err).Msg("Event refused")
		c.tellRefused(ctx, evt, err)
		return false, nil
	case errors.Is(err, bridge.ErrTargetUnknown), errors.Is(err, bridge.ErrInvalidEvent):
		log.Debug().Err(err).Msg("Event not bridged")
		return false, nil
	}
	return false, err
}

// tellRefused tells the sender of a refused event why it was not bridged,
// once per event.
func (c *Connector) tellRefused(ctx context.Context, evt *bridge.Event, err error) {
	room, rerr := roomID(evt.Source.Chat)
	if rerr != nil {
		return
	}
	if won, cerr := c.claim(ctx, string(evt.SourceID)+"/refused"); cerr != nil || !won {
		return
	}
	reason := "the bridge refused it"
	var refused *bridge.RefusedError
	if errors.As(err, &refused) && refused.Reason != "" {
		reason = refused.Reason
	}
	what := "message"
	switch evt.Kind {
	case bridge.KindEdit:
		what = "edit"
	case bridge.KindReaction:
		what = "reaction"
	case bridge.KindDelete:
		what = "deletion"
	}
	var replyTo id.EventID
	if evt.Kind == bridge.KindMessage {
		replyTo = id.EventID(evt.SourceID)
	}
	c.sendNotice(ctx, room, replyTo, fmt.Sprintf("⚠️ Your %s was not delivered: %s.", what, phone.Redact(reason)))
}

func (c *Connector) baseEvent(evt *event.Event, kind bridge.Kind) *bridge.Event {
	return &bridge.Event{
		Kind:      kind,
		Source:    bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(evt.RoomID)},
		SourceID:  bridge.RemoteID(evt.ID),
		Sender:    bridge.Sender{ID: bridge.UserID(evt.Sender), DisplayName: c.memberName(evt.RoomID, evt.Sender)},
		Timestamp: time.UnixMilli(evt.Timestamp),
	}
}

func (c *Connector) handleMessage(ctx context.Context, evt *event.Event) error {
	content := evt.Content.AsMessage()
	if evt.Type == event.EventSticker {
		content.MsgType = event.MessageType(event.EventSticker.Type)
	} else if content.MsgType == "" {
		// Every m.room.message has a msgtype; without one there is nothing to bridge.
		zerolog.Ctx(ctx).Debug().Msg("Message without msgtype; skipped")
		return nil
	}
	if rel := content.RelatesTo; rel != nil && rel.GetReplaceID() != "" {
		if content.NewContent == nil {
			return nil
		}
		out := c.baseEvent(evt, bridge.KindEdit)
		out.Target = bridge.RemoteID(rel.GetReplaceID())
		out.Content = toContent(content.NewContent)
		_, err := c.submit(ctx, out)
		return err
	}
	if content.MsgType == event.MsgText {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(content.Body), CommandPrefix); ok || strings.TrimSpace(content.Body) == strings.TrimSpace(CommandPrefix) {
			return c.runCommandOnce(ctx, evt, cmd)
		}
		owner, err := c.managementRoomUser(ctx, evt.RoomID)
		if err != nil {
			return err
		}
		if owner != "" {
			return c.runCommandOnce(ctx, evt, content.Body)
		}
	}
	out := c.baseEvent(evt, bridge.KindMessage)
	if reply := content.RelatesTo.GetNonFallbackReplyTo(); reply != "" {
		out.ReplyTo = bridge.RemoteID(reply)
		content.RemoveReplyFallback()
	}
	out.Content = toContent(content)
	if t := content.BeeperDisappearingTimer; t != nil && t.Timer.Duration > 0 {
		out.Timer = t.Timer.Duration
	}
	unknown, err := c.submit(ctx, out)
	if err != nil || !unknown {
		return err
	}
	return c.unbridgedMessage(ctx, evt, content)
}

// unbridgedMessage handles a message in a room that is no conversation's
// leg.
func (c *Connector) unbridgedMessage(ctx context.Context, evt *event.Event, content *event.MessageEventContent) error {
	// A room that is no conversation: a DM with the bot that the bridge
	// did not see being created is a management room.
	if content.MsgType == event.MsgText && c.isDMWithBot(ctx, evt.RoomID, evt.Sender) {
		if err := c.saveManagementRoom(ctx, evt.RoomID, evt.Sender); err != nil {
			return err
		}
		return c.runCommandOnce(ctx, evt, content.Body)
	}
	zerolog.Ctx(ctx).Debug().Msg("Message in a room that is not bridged")
	return nil
}

// toContent converts a Matrix message into the normalized content.
func toContent(content *event.MessageEventContent) *bridge.Content {
	out := &bridge.Content{Body: content.Body}
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		out.HTML = content.FormattedBody
		if out.Body == "" {
			out.Body = format.HTMLToText(out.HTML)
		}
	}
	switch content.MsgType {
	case event.MsgNotice:
		out.Type = bridge.MsgNotice
	case event.MsgEmote:
		out.Type = bridge.MsgEmote
	case event.MsgImage:
		out.Type = bridge.MsgImage
	case event.MsgVideo:
		out.Type = bridge.MsgVideo
	case event.MsgAudio:
		out.Type = bridge.MsgAudio
		if content.MSC3245Voice != nil {
			out.Type = bridge.MsgVoice
		}
	case event.MsgFile:
		out.Type = bridge.MsgFile
	case event.MsgLocation:
		out.Type = bridge.MsgText
		locationFromMatrix(out, content) // content_location.go
	case event.MessageType(event.EventSticker.Type):
		out.Type = bridge.MsgSticker
	default:
		out.Type = bridge.MsgText
	}
	if out.Type.IsMedia() {
		// An attachment of an encrypted room (content.file) gets a
		// reference that carries its key, so DownloadMedia can decrypt it.
		media := &bridge.Media{Ref: encodeMediaRef(content), FileName: content.GetFileName()}
		if info := content.Info; info != nil {
			media.MimeType = info.MimeType
			media.Size = int64(info.Size)
			media.Width, media.Height = info.Width, info.Height
			media.Duration = time.Duration(info.Duration) * time.Millisecond
		}
		if out.Type == bridge.MsgVoice {
			media.Waveform = waveformFromMatrix(content.MSC1767Audio) // content_voice.go
			if media.Duration == 0 && content.MSC1767Audio != nil {
				media.Duration = time.Duration(content.MSC1767Audio.Duration) * time.Millisecond
			}
		}
		out.Media = media
		out.Body, out.HTML = content.GetCaption(), ""
		if out.Body != "" && content.Format == event.FormatHTML {
			out.HTML = content.GetFormattedCaption()
		}
		if media.Ref == "" {
			// A media message without a file cannot be forwarded; keep the text.
			out.Type, out.Media, out.Body = bridge.MsgText, nil, content.Body
		}
	}
	return out
}

func (c *Connector) handleReaction(ctx context.Context, evt *event.Event) error {
	content := evt.Content.AsReaction()
	target := content.RelatesTo.GetAnnotationID()
	key := content.RelatesTo.GetAnnotationKey()
	if target == "" || key == "" {
		return nil
	}
	out := c.baseEvent(evt, bridge.KindReaction)
	out.Target = bridge.RemoteID(target)
	out.Reaction = key
	_, err := c.submit(ctx, out)
	return err
}

func (c *Connector) handleRedaction(ctx context.Context, evt *event.Event) error {
	target := evt.Redacts
	if target == "" {
		target = evt.Content.AsRedaction().Redacts
	}
	if target == "" {
		return nil
	}
	out := c.baseEvent(evt, bridge.KindDelete)
	out.Target = bridge.RemoteID(target)
	_, err := c.submit(ctx, out)
	return err
}

// handleMember tracks display names and answers invites to the bot.
func (c *Connector) handleMember(ctx context.Context, evt *event.Event) error {
	content := evt.Content.AsMember()
	target := id.UserID(evt.GetStateKey())
	c.mu.Lock()
	key := memberKey{evt.RoomID, target}
	if content.Membership == event.MembershipJoin && content.Displayname != "" {
		c.members[key] = content.Displayname
	} else if content.Membership.IsLeaveOrBan() {
		delete(c.members, key)
	}
	c.mu.Unlock()
	if target != c.bot {
		return nil
	}
	switch content.Membership {
	case event.MembershipInvite:
		return c.handleBotInvite(ctx, evt, content)
	case event.MembershipLeave, event.MembershipBan:
		return c.forgetRoom(ctx, evt.RoomID)
	}
	return nil
}

func (c *Connector) handleBotInvite(ctx context.Context, evt *event.Event, content *event.MemberEventContent) error {
	log := zerolog.Ctx(ctx)
	won, err := c.claim(ctx, string(evt.ID))
	if err != nil || !won {
		return err
	}
	bot := c.as.BotIntent()
	if !c.mayUse(evt.Sender) {
		log.Debug().Msg("Rejecting invite from a user without permission")
		_, _ = bot.LeaveRoom(ctx, evt.RoomID)
		return nil
	}
	if _, err = bot.JoinRoomByID(ctx, evt.RoomID); err != nil {
		log.Warn().Err(err).Msg("Failed to join room after invite")
		return nil
	}
	if content.IsDirect {
		if err = c.saveManagementRoom(ctx, evt.RoomID, evt.Sender); err != nil {
			return err
		}
		c.sendNotice(ctx, evt.RoomID, "", "Hello! I am the switchboard bridge bot. Send `help` to see what I can do.")
	}
	return nil
}

// isDMWithBot reports whether a room has exactly two joined members: the
// bot and user.
func (c *Connector) isDMWithBot(ctx context.Context, room id.RoomID, user id.UserID) bool {
	resp, err := c.as.BotClient().JoinedMembers(ctx, room)
	if err != nil {
		return false
	}
	_, hasBot := resp.Joined[c.bot]
	_, hasUser := resp.Joined[user]
	return hasBot && hasUser && len(resp.Joined) == 2
}

// memberName returns a member's display name as last seen in the room.
func (c *Connector) memberName(room id.RoomID, user id.UserID) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.members[memberKey{room, user}]
}
