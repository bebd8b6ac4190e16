package bridge

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Kind says what an Event does.
type Kind string

// Event kinds. Typing is not queued (it is ephemeral); every other kind is
// delivered durably and in order.
const (
	KindMessage     Kind = "message"
	KindEdit        Kind = "edit"
	KindReaction    Kind = "reaction"
	KindDelete      Kind = "delete"
	KindReadReceipt Kind = "read"
	KindTyping      Kind = "typing"
)

// MsgType refines a KindMessage event.
type MsgType string

// Message types.
const (
	MsgText    MsgType = "text"
	MsgNotice  MsgType = "notice"
	MsgEmote   MsgType = "emote"
	MsgImage   MsgType = "image"
	MsgVideo   MsgType = "video"
	MsgAudio   MsgType = "audio"
	MsgVoice   MsgType = "voice"
	MsgFile    MsgType = "file"
	MsgSticker MsgType = "sticker"
)

// IsMedia reports whether t carries a media attachment.
func (t MsgType) IsMedia() bool {
	switch t {
	case MsgImage, MsgVideo, MsgAudio, MsgVoice, MsgFile, MsgSticker:
		return true
	}
	return false
}

// Sender is who sent an event, as seen on the source network. DisplayName is
// what other networks may show (a pseudonym for hidden contacts; never a
// phone number unless revealed).
type Sender struct {
	ID          UserID `json:"id"`
	DisplayName string `json:"name,omitempty"`
	// Guest is true when the sender is not the person the source leg
	// belongs to (someone else in a Matrix portal): destinations that send
	// a leg owner's messages without a name (one-to-one chats) put the
	// display name before a guest's message.
	Guest bool `json:"guest,omitempty"`
}

// Content is the normalized body of a message or edit.
type Content struct {
	Type MsgType `json:"type"`
	// Body is plain text (for media: the caption, may be empty).
	Body string `json:"body,omitempty"`
	// HTML is the formatted body (Matrix's org.matrix.custom.html subset),
	// empty when the message has no formatting.
	HTML  string `json:"html,omitempty"`
	Media *Media `json:"media,omitempty"`
}

// Media references an attachment held by the source network. Ref is opaque
// to the core; the source connector resolves it (MediaDownloader). Bytes are
// never stored by the bridge.
type Media struct {
	Ref      string        `json:"ref"`
	MimeType string        `json:"mime,omitempty"`
	FileName string        `json:"file,omitempty"`
	Size     int64         `json:"size,omitempty"`
	Width    int           `json:"w,omitempty"`
	Height   int           `json:"h,omitempty"`
	Duration time.Duration `json:"dur,omitempty"`
}

// Event is the normalized form of anything that happens on a leg. Connectors
// fill it from their network's event and Submit it; the router translates the
// references (ReplyTo, Target) into each destination leg's IDs.
type Event struct {
	Kind Kind `json:"kind"`
	// Source is the leg the event arrived on.
	Source Leg `json:"source"`
	// SourceID is the event's ID on the source network; a second event with
	// the same SourceID on the same leg is a duplicate and is dropped.
	SourceID  RemoteID  `json:"source_id"`
	Sender    Sender    `json:"sender"`
	Timestamp time.Time `json:"ts"`

	// Content is set for KindMessage and KindEdit (the new content).
	Content *Content `json:"content,omitempty"`
	// ReplyTo is the source-network ID of the message this one answers.
	ReplyTo RemoteID `json:"reply_to,omitempty"`
	// Target is the source-network ID of the message edited, reacted to,
	// deleted, or read (KindEdit, KindReaction, KindDelete, KindReadReceipt).
	Target RemoteID `json:"target,omitempty"`
	// Reaction is the emoji or key of a KindReaction.
	Reaction string `json:"reaction,omitempty"`
	// Timer is a per-message disappearing timer (0 = none).
	Timer time.Duration `json:"timer,omitempty"`
	// Typing is true while the sender types (KindTyping).
	Typing bool `json:"typing,omitempty"`
}

// Validate checks that an event is complete for its kind.
func (e *Event) Validate() error {
	if e.Source.Network == "" || e.Source.Chat == "" {
		return fmt.Errorf("%w: source leg is empty", ErrInvalidEvent)
	}
	if e.Kind != KindTyping && e.SourceID == "" {
		return fmt.Errorf("%w: %s event without source ID", ErrInvalidEvent, e.Kind)
	}
	switch e.Kind {
	case KindMessage:
		if e.Content == nil {
			return fmt.Errorf("%w: message without content", ErrInvalidEvent)
		}
		if e.Content.Type.IsMedia() && e.Content.Media == nil {
			return fmt.Errorf("%w: %s message without media", ErrInvalidEvent, e.Content.Type)
		}
	case KindEdit:
		if e.Content == nil || e.Target == "" {
			return fmt.Errorf("%w: edit needs content and a target", ErrInvalidEvent)
		}
	case KindReaction:
		if e.Target == "" || e.Reaction == "" {
			return fmt.Errorf("%w: reaction needs a target and a key", ErrInvalidEvent)
		}
	case KindDelete, KindReadReceipt:
		if e.Target == "" {
			return fmt.Errorf("%w: %s needs a target", ErrInvalidEvent, e.Kind)
		}
	case KindTyping:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidEvent, e.Kind)
	}
	if e.Timer < 0 {
		return fmt.Errorf("%w: negative timer", ErrInvalidEvent)
	}
	return nil
}

// Delivery is one event on its way to one destination leg. ReplyTo and
// Target are already translated into the destination network's IDs.
type Delivery struct {
	ID           DeliveryID
	Conversation ConversationID
	Message      MessageID
	// Chat is the destination chat on the connector's network.
	Chat    ChatID
	Event   *Event
	ReplyTo RemoteID
	Target  RemoteID
	// Attempt counts from 1.
	Attempt int
	// Expires is when retention deletes this message (zero: never).
	Expires time.Time

	router *Router
}

// OpenMedia fetches the attachment of a media message from its source
// connector.
func (d *Delivery) OpenMedia(ctx context.Context) (io.ReadCloser, error) {
	if d.Event.Content == nil || d.Event.Content.Media == nil {
		return nil, fmt.Errorf("%w: delivery has no media", ErrInvalidEvent)
	}
	return d.router.openMedia(ctx, d.Event.Source.Network, d.Event.Content.Media)
}

// ReadMedia reads the delivery's attachment whole. It counts the real
// bytes, reading at most limit+1 of them; the size the source declared
// (Media.Size, a Matrix event's info.size) is trusted neither as the
// length nor for the limit. One larger than limit bytes is refused for
// good (Permanent, wrapping ErrMediaTooLarge), never truncated.
func (d *Delivery) ReadMedia(ctx context.Context, limit int) ([]byte, error) {
	rc, err := d.OpenMedia(ctx)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
	_ = rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	if len(data) > limit {
		if limit < 1<<20 {
			return nil, Permanent(fmt.Errorf("%w: more than %d bytes", ErrMediaTooLarge, limit))
		}
		return nil, Permanent(fmt.Errorf("%w: more than %d MB", ErrMediaTooLarge, limit>>20))
	}
	return data, nil
}

// DeliveryState is the outcome reported back to a sender's leg.
type DeliveryState string

// Delivery states.
const (
	StateDelivered DeliveryState = "delivered"
	StateRetrying  DeliveryState = "retrying"
	StateFailed    DeliveryState = "failed"
)

// StatusReport tells the source leg what happened to one of its messages on
// one destination leg.
type StatusReport struct {
	Conversation ConversationID
	Message      MessageID
	// Source is the leg the message came from; SourceID its ID there.
	Source   Leg
	SourceID RemoteID
	Kind     Kind
	// Destination is the leg the status is about.
	Destination Leg
	State       DeliveryState
	// Err is set for StateFailed and StateRetrying. errors.Is(Err,
	// ErrNotSupported) tells an unsupported action apart.
	Err error
}
