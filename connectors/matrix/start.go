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
	"github.com/switchboard-bridge/switchboard/identity"
)

// PhoneChatOpener is a connector that can reach phone numbers (SMS,
// WhatsApp); `start +N` routes to one of them (see NewRouterStarter).
type PhoneChatOpener interface {
	bridge.Connector
	// OpenPhoneChat returns the chat on the connector's network through
	// which conversation conv (not created yet; see
	// Router.CreateConversationWithID) reaches an E.164 number for owner (a
	// Matrix user ID), and the contact as a Sender whose DisplayName is
	// never the number.
	OpenPhoneChat(ctx context.Context, owner string, phone string, conv bridge.ConversationID) (bridge.ChatID, bridge.Sender, error)
}

// PhoneChatLister is a PhoneChatOpener that can list the chats it already
// has with a number, so `start` returns to an existing conversation.
type PhoneChatLister interface {
	PhoneChatOpener
	ChatsReaching(ctx context.Context, phone string) ([]bridge.ChatID, error)
}

// PhoneReacher is a PhoneChatOpener that can tell, before opening a chat,
// whether a number is reachable on its network for owner (WhatsApp:
// IsOnWhatsApp through the owner's login or the relay account). Routing
// skips a PhoneReacher that says no.
type PhoneReacher interface {
	PhoneChatOpener
	Reaches(ctx context.Context, owner string, phone string) (bool, error)
}

// PhoneGroupOpener is a PhoneChatOpener that can open a chat of its own
// for a conversation when the one chat OpenPhoneChat has for a number
// already belongs to another user's conversation (WhatsApp's relay account:
// one 1:1 chat per contact, so a second user gets a group with the
// contact). Rules:
//   - the starter calls it only after OpenPhoneChat returned a chat that is
//     in another user's conversation; it returns a chat no conversation
//     holds yet, which ChatsReaching lists for phone from then on;
//   - name is the chat's name as the contact sees it; it never holds a
//     number, and the opener may shorten it to its network's limit;
//   - on error nothing is recorded (and whatever the network created is
//     undone), and the error text is shown to the user.
type PhoneGroupOpener interface {
	PhoneChatOpener
	OpenPhoneGroup(ctx context.Context, owner string, phone string, conv bridge.ConversationID, name string) (bridge.ChatID, bridge.Sender, error)
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

// NewRouterStarter returns the StartFunc the daemon installs with
// SetStartHandler. It routes `start +N` (identity.Decide): to the Matrix
// account linked to +N, natively (a room with both users, no bridging hop);
// or to the network the linked person prefers; else to an end-to-end
// encrypted phone network that reaches +N (PhoneReacher, WhatsApp); else
// SMS if the user said `sms on`; else it refuses with the reason. A bridged
// route creates a portal and joins both legs in a new conversation, or
// returns the user's existing one.
func NewRouterStarter(r *bridge.Router, c *Connector) StartFunc {
	return func(ctx context.Context, req StartRequest) (*StartResult, error) {
		number, err := identity.NormalizeNumber(req.Phone)
		if err != nil {
			return nil, err
		}
		req.Phone = number
		openers := map[bridge.NetworkID]PhoneChatOpener{}
		var order []bridge.NetworkID
		for _, conn := range r.Connectors() {
			if opener, ok := conn.(PhoneChatOpener); ok {
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
			return c.startNative(ctx, req, owner)
		}
		res, err := c.startOn(ctx, r, openers[dec.Network], req)
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
func (c *Connector) routeInput(ctx context.Context, req StartRequest, openers map[bridge.NetworkID]PhoneChatOpener, order []bridge.NetworkID) (identity.RouteInput, bridge.Address, error) {
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
		if reacher, ok := openers[network].(PhoneReacher); ok {
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
func (c *Connector) startNative(ctx context.Context, req StartRequest, owner bridge.Address) (*StartResult, error) {
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
	if err = c.allowNewChat(ctx, req.User, bridge.NetworkMatrix); err != nil {
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
		req.User, identity.Mask(req.Phone), room.URI().MatrixToURL())); err != nil {
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

func (c *Connector) startOn(ctx context.Context, r *bridge.Router, opener PhoneChatOpener, req StartRequest) (*StartResult, error) {
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
	if lister, ok := opener.(PhoneChatLister); ok {
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
	if err := c.allowNewChat(ctx, req.User, network); err != nil {
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
		grouper, ok := opener.(PhoneGroupOpener)
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

// groupSuffix ends the name of a chat PhoneGroupOpener opens, so the
// contact sees who the chat is with and that it comes through the bridge.
const groupSuffix = " (switchboard)"

// maxGroupNameRunes bounds the name given to PhoneGroupOpener: WhatsApp's
// limit for a group subject.
const maxGroupNameRunes = 25

// groupChatName is the name of a chat of its own for user's conversation
// (PhoneGroupOpener): their Matrix display name, else their localpart,
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
		if cand = strings.Join(strings.Fields(strings.ToValidUTF8(cand, "")), " "); cand != "" && !ContainsPhoneNumber(cand) {
			name = cand
			break
		}
	}
	room := maxGroupNameRunes - utf8.RuneCountInString(groupSuffix)
	if r := []rune(name); len(r) > room {
		name = strings.TrimSpace(string(r[:room-1])) + "…"
	}
	return RedactPhoneNumbers(name) + groupSuffix
}
