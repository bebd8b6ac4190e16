package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// StartRequest is a user's `start +N` command.
type StartRequest struct {
	// User is the Matrix user who asked.
	User id.UserID
	// Phone is the number to reach (E.164; other written forms are read
	// with phone.Normalize). It must never be shown on Matrix or logged.
	Phone string
}

// StartResult is where a started conversation lives.
type StartResult struct {
	// Room is the portal room of the user's Matrix leg.
	Room id.RoomID
	// Network carries the chat to the number; Encrypted tells whether it
	// is end-to-end encrypted there, RoomEncrypted whether the Matrix room
	// is.
	Network       bridge.NetworkID
	Encrypted     bool
	RoomEncrypted bool
	// Native is true when the number is linked to a Matrix account and the
	// room is a plain Matrix room with it (no bridging hop).
	Native bool
	// Existing is true when the conversation already existed.
	Existing bool
	// Undeletable is true when the network cannot delete messages, so
	// disappearing-message timers cannot remove copies there.
	Undeletable bool
	// Group is true when the network carries this conversation in a chat
	// of its own with the contact (a group; see bridge.PhoneGroupOpener)
	// because their one-to-one chat is in another user's conversation.
	Group bool
}

// StartFunc opens (or returns to) a conversation between a Matrix user and
// a phone number (NewRouterStarter). Its error text is shown to the user
// after phone numbers are redacted.
type StartFunc func(ctx context.Context, req StartRequest) (*StartResult, error)

// StartCommand is `start +N`, registered by the daemon with the routing
// of NewRouterStarter: it opens (or returns to) a conversation with a
// number, read as people write it (the whole rest of the line).
func StartCommand(fn StartFunc) commands.Command {
	return commands.Command{
		Name: "start", Usage: "start +<phone number>", Help: "open (or return to) a conversation with that number",
		Level: commands.LevelUser, Args: commands.PhoneArg, Verbatim: true,
		Run: func(ctx context.Context, req *commands.Request) string {
			res, err := fn(ctx, StartRequest{User: id.UserID(req.User.ID), Phone: req.Phone})
			if err != nil {
				zerolog.Ctx(ctx).Warn().Str("error", phone.Redact(err.Error())).Msg("start command failed")
				return "Could not start the chat: " + phone.Redact(err.Error())
			}
			return startAnswer(res)
		},
	}
}

// startAnswer tells the user where a started chat is and how it is carried.
func startAnswer(res *StartResult) string {
	verb := "Started"
	if res.Existing {
		verb = "You already have"
	}
	var how string
	switch {
	case res.Native:
		how = "It is a Matrix room with the account linked to that number (no SMS or WhatsApp hop)"
		if res.RoomEncrypted {
			how += " and is end-to-end encrypted."
		} else {
			how += "; the room is not encrypted."
		}
	case !res.Encrypted:
		how = fmt.Sprintf("It is carried by %s and is not end-to-end encrypted.", res.Network)
	case res.RoomEncrypted:
		how = fmt.Sprintf("It is carried by %s and is end-to-end encrypted on every hop (the bridge decrypts and re-encrypts between Matrix and %s).", res.Network, res.Network)
	default:
		how = fmt.Sprintf("It is carried by %s, end-to-end encrypted there; this Matrix room is not encrypted, so not every hop is end-to-end encrypted.", res.Network)
	}
	answer := fmt.Sprintf("%s a chat with that number: %s. %s", verb, res.Room.URI().MatrixToURL(), how)
	if res.Group {
		answer += fmt.Sprintf(" On %s it is a group of its own with the contact, named after you, not a one-to-one chat.", res.Network)
	}
	if res.Undeletable {
		answer += fmt.Sprintf(" %s cannot delete messages: when this chat's messages expire they are removed on Matrix "+
			"and from the bridge, but copies delivered by %s stay on the contact's phone.", res.Network, res.Network)
	}
	return answer
}

// StartOptions are what NewRouterStarter consults besides the router and
// the connector (whose identity store, SetIdentity, holds links and
// preferences).
type StartOptions struct {
	// Gate decides whether a user may start a new conversation (safety
	// limits); nil allows every one.
	Gate NewChatGate
}

var (
	// ErrNoPhoneNetwork means no registered connector reaches phone numbers.
	ErrNoPhoneNetwork = errors.New("no enabled network can reach phone numbers")
	// ErrSMSNotOptedIn means the only network that reaches a number is
	// SMS and the user has not said `sms on`.
	ErrSMSNotOptedIn = identity.ErrSMSNotOptedIn
	// ErrChatTaken means the chat that reaches a number already belongs to
	// another user's conversation, and the network cannot open another one
	// (it is no PhoneGroupOpener).
	ErrChatTaken = errors.New("that number is already in a conversation of another user")
)

// NewRouterStarter returns the StartFunc behind StartCommand. It routes `start +N` (identity.Decide): to the Matrix
// account linked to +N, natively (a room with both users, no bridging hop);
// or to the network the linked person prefers; else to an end-to-end
// encrypted phone network that reaches +N (bridge.PhoneReacher, WhatsApp); else
// SMS if the user said `sms on`; else it refuses with the reason. A bridged
// route creates a portal and joins both legs in a new conversation, or
// returns the user's existing one.
func NewRouterStarter(r *bridge.Router, c *Connector, opts StartOptions) StartFunc {
	s := &starter{c: c, gate: opts.Gate}
	return func(ctx context.Context, req StartRequest) (*StartResult, error) {
		number, err := phone.Normalize(req.Phone, "")
		if err != nil {
			return nil, err
		}
		req.Phone = number
		openers := map[bridge.NetworkID]bridge.PhoneChatOpener{}
		var order []bridge.NetworkID
		for _, conn := range r.Connectors() {
			if opener, ok := conn.(bridge.PhoneChatOpener); ok {
				openers[opener.Network()] = opener
				order = append(order, opener.Network())
			}
		}
		in, owner, err := c.routeInput(ctx, req, openers, order)
		if err != nil {
			return nil, err
		}
		dec := identity.Decide(in)
		switch {
		case errors.Is(dec.Err, identity.ErrUnreachable) && len(openers) == 0 && !in.Linked:
			return nil, ErrNoPhoneNetwork
		case dec.Err != nil:
			return nil, dec.Err
		case dec.Native:
			return s.startNative(ctx, req, owner)
		}
		res, err := s.startOn(ctx, r, openers[dec.Network], req)
		if err != nil {
			return nil, err
		}
		if res.RoomEncrypted, err = c.IsEncrypted(ctx, bridge.ChatID(res.Room)); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to check whether the portal is encrypted")
		}
		return res, nil
	}
}

// routeInput gathers what routing req depends on: the link of the number
// and the linked person's preference, the sender's SMS opt-in, and which
// networks reach the number.
func (c *Connector) routeInput(ctx context.Context, req StartRequest, openers map[bridge.NetworkID]bridge.PhoneChatOpener, order []bridge.NetworkID) (identity.RouteInput, bridge.Address, error) {
	var in identity.RouteInput
	var owner bridge.Address
	requester := UserAddress(req.User)
	if store := c.identityStore(); store != nil {
		prefs, err := store.Prefs(ctx, requester)
		if err != nil {
			return in, owner, err
		}
		in.SenderSMS = prefs.SMS
		if store.Vault() != nil {
			if owner, in.Linked, err = store.LinkedOwner(ctx, req.Phone); err != nil {
				return in, owner, err
			}
			if in.Linked && owner.Network != bridge.NetworkMatrix {
				in.Linked = false
			}
			in.LinkedToSender = in.Linked && owner == requester
			if in.Linked {
				p, err := store.Prefs(ctx, owner)
				if err != nil {
					return in, owner, err
				}
				in.Prefer = p.Prefer
			}
		}
	}
	_, in.SMSAvailable = openers[bridge.NetworkSMS]
	for _, network := range order {
		if network == bridge.NetworkSMS {
			continue
		}
		if reacher, ok := openers[network].(bridge.PhoneReacher); ok {
			reach, err := reacher.Reaches(ctx, string(req.User), req.Phone)
			if err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("network", string(network)).Msg("Reachability check failed; not routing there")
				continue
			}
			if !reach {
				continue
			}
		}
		in.Reachable = append(in.Reachable, network)
	}
	return in, owner, nil
}

// startNative opens (or returns to) a plain Matrix room between the user
// and the Matrix account linked to the number, and records it as a route
// of that link so `unlink` removes it.
func (s *starter) startNative(ctx context.Context, req StartRequest, owner bridge.Address) (*StartResult, error) {
	c := s.c
	store := c.identityStore()
	requester := UserAddress(req.User)
	res := &StartResult{Network: bridge.NetworkMatrix, Native: true, Encrypted: true, RoomEncrypted: true}
	route, ok, err := store.RouteFor(ctx, requester, req.Phone)
	if err != nil {
		return nil, err
	}
	if ok && route.Network == bridge.NetworkMatrix {
		res.Room, res.Existing = id.RoomID(route.Chat), true
		return res, nil
	}
	if err = s.allowNewChat(ctx, req.User, bridge.NetworkMatrix); err != nil {
		return nil, err
	}
	target := id.UserID(owner.ID)
	room, err := c.CreateNativeRoom(ctx, req.User, target)
	if err != nil {
		return nil, err
	}
	if err = store.SaveRoute(ctx, requester, req.Phone, bridge.NetworkMatrix, bridge.ChatID(room)); err != nil {
		return nil, err
	}
	zerolog.Ctx(ctx).Info().Stringer("room_id", room).Msg("Routed a phone number to its linked Matrix account")
	if err = c.NotifyUser(ctx, target, fmt.Sprintf("%s started a chat with you through your linked number %s: %s",
		req.User, phone.Mask(req.Phone), room.URI().MatrixToURL())); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to tell the linked user about a new chat")
	}
	res.Room = room
	return res, nil
}

// CreateNativeRoom creates an end-to-end encrypted room for two Matrix
// users: the bot creates it, invites both with full power, and leaves
// before anyone speaks, so no bridge hop (and no bridge device) sits
// between them.
func (c *Connector) CreateNativeRoom(ctx context.Context, a, b id.UserID) (id.RoomID, error) {
	if !c.isRunning() {
		return "", ErrNotStarted
	}
	ctx = c.mctx(ctx)
	bot := c.as.BotIntent()
	resp, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "private",
		Preset:     "private_chat",
		Invite:     []id.UserID{a, b},
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users: map[id.UserID]int{c.bot: 100, a: 100, b: 100},
		},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		return "", classify("create room", err)
	}
	if _, err = bot.LeaveRoom(ctx, resp.RoomID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", resp.RoomID).Msg("Bot failed to leave a native room")
	}
	return resp.RoomID, nil
}

func (s *starter) startOn(ctx context.Context, r *bridge.Router, opener bridge.PhoneChatOpener, req StartRequest) (*StartResult, error) {
	c := s.c
	network := opener.Network()
	if network == bridge.NetworkSMS {
		// SMS is not encrypted: only with the sender's explicit opt-in.
		store := c.identityStore()
		if store == nil {
			return nil, ErrSMSNotOptedIn
		}
		if prefs, err := store.Prefs(ctx, UserAddress(req.User)); err != nil {
			return nil, err
		} else if !prefs.SMS {
			return nil, ErrSMSNotOptedIn
		}
	}
	res := &StartResult{Network: network}
	_, canDelete := opener.(bridge.DeleteSender)
	_, canExpire := opener.(bridge.MessageExpirer)
	res.Undeletable = !canDelete && !canExpire
	encrypted := func(chat bridge.ChatID) (bool, error) {
		if er, ok := opener.(bridge.EncryptionReporter); ok {
			return er.IsEncrypted(ctx, chat)
		}
		return false, nil
	}
	// Return to the user's conversation with that number if there is one.
	if lister, ok := opener.(bridge.PhoneChatLister); ok {
		chats, err := lister.ChatsReaching(ctx, req.Phone)
		if err != nil {
			return nil, err
		}
		for _, chat := range chats {
			room, found, err := c.ownedPortal(ctx, r, req.User, bridge.Leg{Network: network, Chat: chat})
			if err != nil {
				return nil, err
			}
			if found {
				res.Room, res.Existing = room, true
				res.Encrypted, err = encrypted(chat)
				return res, err
			}
		}
	}
	if err := s.allowNewChat(ctx, req.User, network); err != nil {
		return nil, err
	}
	conv := bridge.NewConversationID()
	chat, contact, err := opener.OpenPhoneChat(ctx, string(req.User), req.Phone, conv)
	if err != nil {
		return nil, err
	}
	leg := bridge.Leg{Network: network, Chat: chat}
	if res.Encrypted, err = encrypted(chat); err != nil {
		return nil, err
	}
	// An opener with one chat per number may hand back a chat that is
	// already in a conversation: the user's own, or another user's, when
	// the opener can make this conversation a chat of its own (a group).
	if _, err = r.ConversationOf(ctx, leg); err == nil {
		room, found, err := c.ownedPortal(ctx, r, req.User, leg)
		if err != nil {
			return nil, err
		} else if found {
			res.Room, res.Existing = room, true
			return res, nil
		}
		grouper, ok := opener.(bridge.PhoneGroupOpener)
		if !ok {
			return nil, ErrChatTaken
		}
		if chat, contact, err = grouper.OpenPhoneGroup(ctx, string(req.User), req.Phone, conv, c.groupChatName(ctx, req.User)); err != nil {
			return nil, err
		}
		leg.Chat, res.Group = chat, true
		if res.Encrypted, err = encrypted(chat); err != nil {
			return nil, err
		}
		zerolog.Ctx(ctx).Info().Str("network", string(network)).Msg("Opened a chat of its own for a number another user's conversation holds")
	} else if !errors.Is(err, bridge.ErrUnknownLeg) {
		return nil, err
	}
	room, err := c.CreatePortal(ctx, PortalOptions{User: req.User, Network: network, Contact: contact, Direct: true})
	if err != nil {
		return nil, fmt.Errorf("create portal: %w", err)
	}
	if err = r.CreateConversationWithID(ctx, conv, bridge.Leg{Network: bridge.NetworkMatrix, Chat: room}, leg); err != nil {
		return nil, err
	}
	res.Room = roomIDOrEmpty(room)
	return res, nil
}

// starter is NewRouterStarter's state.
type starter struct {
	c    *Connector
	gate NewChatGate
}

func (s *starter) allowNewChat(ctx context.Context, user id.UserID, network bridge.NetworkID) error {
	if s.gate == nil {
		return nil
	}
	return s.gate(ctx, user, network)
}

// ownedPortal finds the Matrix portal of user in the conversation that leg
// belongs to.
func (c *Connector) ownedPortal(ctx context.Context, r *bridge.Router, user id.UserID, leg bridge.Leg) (id.RoomID, bool, error) {
	conv, err := r.ConversationOf(ctx, leg)
	if errors.Is(err, bridge.ErrUnknownLeg) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	legs, err := r.Legs(ctx, conv)
	if err != nil {
		return "", false, err
	}
	for _, l := range legs {
		if l.Network != bridge.NetworkMatrix {
			continue
		}
		portal, err := c.getPortal(ctx, roomIDOrEmpty(l.Chat))
		if err != nil {
			return "", false, err
		}
		if portal != nil && portal.Owner == user {
			return roomIDOrEmpty(l.Chat), true, nil
		}
	}
	return "", false, nil
}

// groupSuffix ends the name of a chat bridge.PhoneGroupOpener opens, so the
// contact sees who the chat is with and that it comes through the bridge.
const groupSuffix = " (switchboard)"

// maxGroupNameRunes bounds the name given to PhoneGroupOpener: WhatsApp's
// limit for a group subject.
const maxGroupNameRunes = 25

// groupChatName is the name of a chat of its own for user's conversation
// (bridge.PhoneGroupOpener): their Matrix display name, else their localpart,
// shortened to fit, with groupSuffix, and never a number.
func (c *Connector) groupChatName(ctx context.Context, user id.UserID) string {
	name := ""
	if c.isRunning() {
		resp, err := c.as.BotIntent().GetDisplayName(c.mctx(ctx), user)
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Could not get the display name for a chat's name; using the localpart")
		} else {
			name = resp.DisplayName
		}
	}
	return groupName(name, user)
}

// groupName builds groupChatName from a display name: the first of the
// display name and the localpart that is not empty and holds no number
// ("Matrix user" otherwise).
func groupName(display string, user id.UserID) string {
	localpart, _, _ := user.ParseAndDecode()
	name := "Matrix user"
	for _, cand := range []string{display, localpart} {
		if cand = strings.Join(strings.Fields(strings.ToValidUTF8(cand, "")), " "); cand != "" && !phone.Contains(cand) {
			name = cand
			break
		}
	}
	room := maxGroupNameRunes - utf8.RuneCountInString(groupSuffix)
	if r := []rune(name); len(r) > room {
		name = strings.TrimSpace(string(r[:room-1])) + "…"
	}
	return phone.Redact(name) + groupSuffix
}
