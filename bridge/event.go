package bridge

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	// MsgLocation is a shared position (Content.Location); Body holds its
	// readable text.
	MsgLocation MsgType = "location"
	// MsgPoll starts a poll (Content.Poll: question and options).
	MsgPoll MsgType = "poll"
	// MsgPollVote is a vote in the poll the event's ReplyTo names
	// (Content.Poll.Selected); a later vote by the same person replaces
	// an earlier one, and no selection withdraws it.
	MsgPollVote MsgType = "vote"
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
	// Self is set when the sender is the person the source leg belongs to,
	// writing from their own app on that network (WhatsApp on their
	// phone): it names their account on the network that leg was opened
	// from (a Matrix user ID). A destination that may act as that account
	// (Matrix double puppeting) sends as it; others show the sender as
	// usual.
	Self string `json:"self,omitempty"`
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
	// Location is set for MsgLocation.
	Location *Location `json:"loc,omitempty"`
	// Poll is set for MsgPoll and MsgPollVote.
	Poll *Poll `json:"poll,omitempty"`
}

// Location is a position shared in a chat. Live is true for the last
// known position of a live location (which the bridge does not follow).
type Location struct {
	Lat  float64 `json:"lat"`
	Long float64 `json:"long"`
	// Name is the place's name or address, when the sender gave one.
	Name string `json:"name,omitempty"`
	Live bool   `json:"live,omitempty"`
}

// GeoURI is the location as an RFC 5870 geo URI.
func (l *Location) GeoURI() string {
	return "geo:" + strconv.FormatFloat(l.Lat, 'f', 6, 64) + "," + strconv.FormatFloat(l.Long, 'f', 6, 64)
}

// Text is the location as readable text, for networks without locations
// (SMS) and clients that cannot show them.
func (l *Location) Text() string {
	what := "Location"
	if l.Live {
		what = "Live location (last known position; open WhatsApp to follow it)"
	}
	if l.Name != "" {
		return what + ": " + l.Name + " (" + l.GeoURI() + ")"
	}
	return what + ": " + l.GeoURI()
}

// Poll is a poll's question and options (MsgPoll), or the options a vote
// selects (MsgPollVote). Options are identified across networks by their
// index: each connector maps its network's option IDs to indexes.
type Poll struct {
	Question string   `json:"q,omitempty"`
	Options  []string `json:"opts,omitempty"`
	// MaxSelections is how many options one person may choose (0 or 1:
	// one).
	MaxSelections int `json:"max,omitempty"`
	// Selected are the indexes (into the poll's Options) a vote chooses.
	Selected []int `json:"sel,omitempty"`
}

// Text is the poll as readable text: the question and numbered options
// (for a vote, the numbers chosen), for networks without polls (SMS).
func (p *Poll) Text(t MsgType) string {
	var b strings.Builder
	if t == MsgPollVote {
		if len(p.Selected) == 0 {
			return "Withdrew their poll vote"
		}
		b.WriteString("Voted for option")
		if len(p.Selected) > 1 {
			b.WriteString("s")
		}
		for i, n := range p.Selected {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + strconv.Itoa(n+1))
		}
		return b.String()
	}
	b.WriteString("Poll: " + p.Question)
	for i, o := range p.Options {
		b.WriteString("\n" + strconv.Itoa(i+1) + ". " + o)
	}
	if p.MaxSelections > 1 {
		b.WriteString("\n(up to " + strconv.Itoa(p.MaxSelections) + " choices)")
	}
	return b.String()
}

// PlainText is what a network that cannot carry the content's type shows:
// the readable text of a location, poll or vote, else the body.
func (c *Content) PlainText() string {
	switch {
	case c.Type == MsgLocation && c.Location != nil:
		return c.Location.Text()
	case (c.Type == MsgPoll || c.Type == MsgPollVote) && c.Poll != nil:
		return c.Poll.Text(c.Type)
	}
	return c.Body
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
	// Waveform is a voice note's loudness over time, each sample 0–255.
	Waveform []byte `json:"wave,omitempty"`
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
	// ChatInfo is set for KindChatInfo (chatinfo.go).
	ChatInfo *ChatInfo `json:"chat_info,omitempty"`
	// History marks an earlier message of the source network (a history
	// sync, a backfill), delivered only to HistoryReceiver legs (see
	// history.go). Only for KindMessage.
	History bool `json:"history,omitempty"`
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
		if err := e.Content.validateRich(e.ReplyTo); err != nil {
			return err
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
	case KindChatInfo:
		if err := validateChatInfo(e); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidEvent, e.Kind)
	}
	if e.Timer < 0 {
		return fmt.Errorf("%w: negative timer", ErrInvalidEvent)
	}
	if e.History && e.Kind != KindMessage {
		return fmt.Errorf("%w: %s event marked as history", ErrInvalidEvent, e.Kind)
	}
	return nil
}

// validateRich checks the fields locations, polls and votes need.
func (c *Content) validateRich(replyTo RemoteID) error {
	switch c.Type {
	case MsgLocation:
		if c.Location == nil {
			return fmt.Errorf("%w: location message without a location", ErrInvalidEvent)
		}
	case MsgPoll:
		if c.Poll == nil || len(c.Poll.Options) == 0 {
			return fmt.Errorf("%w: poll without options", ErrInvalidEvent)
		}
	case MsgPollVote:
		if c.Poll == nil || replyTo == "" {
			return fmt.Errorf("%w: vote needs a poll", ErrInvalidEvent)
		}
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
	// commits are the connector's hooks (commit.go).
	commits []commitHook
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
