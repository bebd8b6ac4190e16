package matrix

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// PhoneChatOpener is a connector that can reach phone numbers (SMS,
// WhatsApp). `start +N` uses the first registered connector that
// implements it.
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

var (
	// ErrNoPhoneNetwork means no registered connector reaches phone numbers.
	ErrNoPhoneNetwork = errors.New("no enabled network can reach phone numbers")
	// ErrSMSNotOptedIn means the only network that reaches a number is
	// SMS and the user has not said `sms on`.
	ErrSMSNotOptedIn = errors.New("only SMS reaches that number, and SMS is not end-to-end encrypted; say `sms on` first if you want SMS chats")
	// ErrChatTaken means the chat that reaches a number already belongs to
	// another user's conversation.
	ErrChatTaken = errors.New("that number is already in a conversation of another user")
)

// NewRouterStarter returns the StartFunc the daemon installs with
// SetStartHandler until identity routing exists: it opens the chat on the
// first registered connector implementing PhoneChatOpener, creates a
// portal for the user and joins both legs in a new conversation. If the
// user already has that conversation, its room is returned.
func NewRouterStarter(r *bridge.Router, c *Connector) StartFunc {
	return func(ctx context.Context, req StartRequest) (*StartResult, error) {
		for _, conn := range r.Connectors() {
			opener, ok := conn.(PhoneChatOpener)
			if !ok {
				continue
			}
			return c.startOn(ctx, r, opener, req)
		}
		return nil, ErrNoPhoneNetwork
	}
}

func (c *Connector) startOn(ctx context.Context, r *bridge.Router, opener PhoneChatOpener, req StartRequest) (*StartResult, error) {
	network := opener.Network()
	if network == bridge.NetworkSMS {
		// SMS is not encrypted: only with the sender's explicit opt-in.
		store := c.identityStore()
		if store == nil {
			return nil, ErrSMSNotOptedIn
		}
		prefs, err := store.Prefs(ctx, UserAddress(req.User))
		if err != nil {
			return nil, err
		}
		if !prefs.SMS {
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
	// already in a conversation.
	if _, err = r.ConversationOf(ctx, leg); err == nil {
		room, found, err := c.ownedPortal(ctx, r, req.User, leg)
		if err != nil {
			return nil, err
		} else if !found {
			return nil, ErrChatTaken
		}
		res.Room, res.Existing = room, true
		return res, nil
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
