package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// KindChatInfo is a change to a chat's metadata (its name, topic or
// avatar) or to who is in it (Event.ChatInfo says which). It is delivered
// durably and in order like a message, to connectors that implement
// ChatInfoSender; see chatInfoFallback for the others.
const KindChatInfo Kind = "chat_info"

// Membership is what happened to a chat member (ChatInfo.Membership).
type Membership string

// Membership changes.
const (
	// MemberJoined: ChatInfo.Member joined (or was added to) the chat.
	MemberJoined Membership = "join"
	// MemberLeft: ChatInfo.Member left the chat, or was removed from it
	// by the event's Sender when that is someone else (a kick).
	MemberLeft Membership = "leave"
)

// ChatInfo is the body of a KindChatInfo event: only the fields set
// changed. Names and topics are content (sealed in the queue like a
// message body, never logged); an avatar is a Media reference the source
// connector resolves, read size-limited and never stored.
type ChatInfo struct {
	// Name is the chat's new name (nil: unchanged).
	Name *string `json:"name,omitempty"`
	// Topic is the chat's new topic or description ("" clears it; nil:
	// unchanged).
	Topic *string `json:"topic,omitempty"`
	// Avatar is the chat's new picture (nil: unchanged).
	Avatar *Media `json:"avatar,omitempty"`
	// AvatarRemoved is true when the picture was removed.
	AvatarRemoved bool `json:"avatar_removed,omitempty"`
	// Membership and Member say who joined or left (both empty: no
	// membership change).
	Membership Membership `json:"membership,omitempty"`
	Member     *Sender    `json:"member,omitempty"`
	// Shared is true when the change is seen by everyone on the source
	// network (a WhatsApp group's subject), false when it is one user's
	// own view of the chat (their Matrix portal). Only shared changes are
	// told to legs that cannot apply them (see chatInfoFallback).
	Shared bool `json:"shared,omitempty"`
}

// ChatInfoSender is a connector that can apply chat metadata and
// membership changes (KindChatInfo) to its chats. A change the network
// refuses (no permission, say) is returned as a Permanent error: its
// sender is told through a StatusReport.
type ChatInfoSender interface {
	Connector
	SendChatInfo(ctx context.Context, d *Delivery) error
}

// validateChatInfo checks a KindChatInfo event.
func validateChatInfo(e *Event) error {
	ci := e.ChatInfo
	if ci == nil {
		return fmt.Errorf("%w: chat info event without chat info", ErrInvalidEvent)
	}
	if (ci.Membership == "") != (ci.Member == nil) {
		return fmt.Errorf("%w: membership change needs a member", ErrInvalidEvent)
	}
	switch ci.Membership {
	case "", MemberJoined, MemberLeft:
	default:
		return fmt.Errorf("%w: unknown membership %q", ErrInvalidEvent, ci.Membership)
	}
	if ci.Member != nil && ci.Member.ID == "" {
		return fmt.Errorf("%w: membership change of an unnamed member", ErrInvalidEvent)
	}
	if ci.Avatar != nil && ci.Avatar.Ref == "" {
		return fmt.Errorf("%w: avatar without reference", ErrInvalidEvent)
	}
	if ci.Name == nil && ci.Topic == nil && ci.Avatar == nil && !ci.AvatarRemoved && ci.Membership == "" {
		return fmt.Errorf("%w: chat info event changes nothing", ErrInvalidEvent)
	}
	return nil
}

// ReadAvatar reads the new avatar of a KindChatInfo delivery whole, at
// most limit bytes (a larger one is refused for good, wrapping
// ErrMediaTooLarge). The bytes are only in memory: never store them.
func (d *Delivery) ReadAvatar(ctx context.Context, limit int) ([]byte, error) {
	ci := d.Event.ChatInfo
	if ci == nil || ci.Avatar == nil {
		return nil, fmt.Errorf("%w: delivery has no avatar", ErrInvalidEvent)
	}
	// ReadMedia reads Content.Media: hand it a view of the event whose
	// media is the avatar.
	view := *d
	evt := *d.Event
	evt.Content = &Content{Type: MsgImage, Media: ci.Avatar}
	view.Event = &evt
	return view.ReadMedia(ctx, limit)
}

// chatInfoFallback is what a leg whose connector is no ChatInfoSender
// gets instead of a chat info change: a short notice for a shared change
// of name, topic or avatar (the text names no number: a name that looks
// like one is redacted), nothing for membership (the source connector
// sends its own notices) or for one user's view of a chat.
func chatInfoFallback(e *Event) *Content {
	ci := e.ChatInfo
	if ci == nil || !ci.Shared {
		return nil
	}
	var parts []string
	if ci.Name != nil {
		parts = append(parts, "renamed the group to “"+phone.Redact(strings.TrimSpace(*ci.Name))+"”")
	}
	if ci.Topic != nil {
		if *ci.Topic == "" {
			parts = append(parts, "removed the group's description")
		} else {
			parts = append(parts, "changed the group's description")
		}
	}
	if ci.Avatar != nil {
		parts = append(parts, "changed the group's picture")
	} else if ci.AvatarRemoved {
		parts = append(parts, "removed the group's picture")
	}
	if len(parts) == 0 {
		return nil
	}
	return &Content{Type: MsgNotice, Body: strings.Join(parts, ", ") + "."}
}

// sendChatInfo delivers a KindChatInfo event to c: through ChatInfoSender
// when c has it, otherwise as chatInfoFallback's notice (or not at all).
func sendChatInfo(ctx context.Context, c Connector, d *Delivery) (RemoteID, error) {
	if cs, ok := c.(ChatInfoSender); ok {
		return "", cs.SendChatInfo(ctx, d)
	}
	content := chatInfoFallback(d.Event)
	if content == nil {
		return "", nil
	}
	view := *d
	evt := *d.Event
	evt.Kind, evt.Content, evt.ChatInfo = KindMessage, content, nil
	view.Event = &evt
	return c.SendMessage(ctx, &view)
}
