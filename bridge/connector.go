package bridge

import (
	"context"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// Connector is what every network plugin implements. The lifecycle is fixed:
//
//   - Init is called once, before Start, with the Host the connector uses to
//     submit events. It must not do I/O (no network, no database writes).
//   - Start connects and begins receiving. It returns once the connector is
//     running; background work it starts must outlive ctx only through its
//     own context, stopped by Stop. A failed Start leaves nothing running.
//   - Stop stops receiving and sending and releases resources. It is called
//     once, after which the connector is not used again.
//
// SendMessage delivers a KindMessage event to one of the connector's chats
// and returns the message's ID on the network. A returned error is retried
// with backoff unless it wraps ErrPermanent (see Permanent) or is a
// *NotSupportedError. Every other capability is optional: implement the
// interfaces below.
type Connector interface {
	Network() NetworkID
	Init(host Host)
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	SendMessage(ctx context.Context, d *Delivery) (RemoteID, error)
}

// Host is the router's side of a connector: how it submits what it receives.
type Host interface {
	// Submit durably accepts an event that arrived on one of the connector's
	// legs. When it returns nil the event is recorded and will be delivered
	// to every other leg (or its sender told it failed); the connector may
	// acknowledge it to its network. A redelivered event (same leg and
	// SourceID) returns nil and is not delivered again.
	Submit(ctx context.Context, evt *Event) error
	// Log returns the connector's logger.
	Log() *zerolog.Logger
}

// BatchSubmitter is implemented by the Host the router gives each
// connector (type-assert it): SubmitBatch accepts evts in slice order in
// one transaction and one commit, as if each were submitted alone in turn
// (a later event sees an earlier one as the target of a reply, edit or
// reaction, and the same event twice is a duplicate). errs[i] is what
// Submit would have returned for evts[i]; a nil errs[i] means evts[i] is
// committed. One event refused, from an unknown leg or invalid does not
// fail the others; a database error fails every event that reached it.
type BatchSubmitter interface {
	SubmitBatch(ctx context.Context, evts []*Event) (errs []error)
}

// EditSender is a connector that can edit messages it sent.
type EditSender interface {
	Connector
	SendEdit(ctx context.Context, d *Delivery) (RemoteID, error)
}

// ReactionSender is a connector that can react to messages.
type ReactionSender interface {
	Connector
	SendReaction(ctx context.Context, d *Delivery) (RemoteID, error)
}

// DeleteSender is a connector that can delete (redact, revoke) messages.
type DeleteSender interface {
	Connector
	SendDelete(ctx context.Context, d *Delivery) error
}

// MessageExpirer is a connector that deletes a message whose retention
// ended with its own (admin) identity rather than the sender's. The expiry
// scheduler prefers it to DeleteSender, whose Delivery has no sender.
type MessageExpirer interface {
	Connector
	ExpireMessage(ctx context.Context, chat ChatID, message RemoteID) error
}

// ReadReceiptSender is a connector that can mark messages read.
type ReadReceiptSender interface {
	Connector
	SendReadReceipt(ctx context.Context, d *Delivery) error
}

// TypingSender is a connector that can show typing notifications. Typing is
// best effort and not queued.
type TypingSender interface {
	Connector
	SendTyping(ctx context.Context, chat ChatID, sender Sender, typing bool) error
}

// MediaSender is a connector that can send attachments. Without it, a media
// message is delivered as text (its caption and file name) with a note.
type MediaSender interface {
	Connector
	SendMedia(ctx context.Context, d *Delivery) (RemoteID, error)
}

// MediaDownloader is a connector whose Media.Ref values can be fetched, so
// other connectors can forward its attachments.
type MediaDownloader interface {
	Connector
	DownloadMedia(ctx context.Context, media *Media) (io.ReadCloser, error)
}

// TimerSetter is a connector that can set a chat's disappearing timer.
type TimerSetter interface {
	Connector
	SetDisappearingTimer(ctx context.Context, chat ChatID, timer time.Duration) error
}

// EncryptionReporter is a connector that can tell whether a chat is end-to-end
// encrypted on its network.
type EncryptionReporter interface {
	Connector
	IsEncrypted(ctx context.Context, chat ChatID) (bool, error)
}

// StatusReceiver is a connector that shows senders what happened to their
// messages (a failure notice in a Matrix room, say). Failed reports must
// reach the sender visibly.
type StatusReceiver interface {
	Connector
	HandleStatus(ctx context.Context, report *StatusReport)
}

// LegObserver is a connector told when a conversation holding one of its
// chats gains or loses a leg (CreateConversation, AddLeg, RemoveLeg), with
// the conversation's legs afterwards; for a removed leg of its own, legs is
// what the rest of the conversation holds. It is called after the change
// is committed, on the caller's goroutine: long work belongs in the
// background.
type LegObserver interface {
	Connector
	LegsChanged(ctx context.Context, conv ConversationID, legs []Leg)
}

// HealthReporter is a connector that reports its state for /health.
type HealthReporter interface {
	Connector
	Health(ctx context.Context) Health
}

// HealthState is a connector's coarse state.
type HealthState string

// Health states.
const (
	HealthStarting      HealthState = "starting"
	HealthOK            HealthState = "ok"
	HealthDegraded      HealthState = "degraded"
	HealthDown          HealthState = "down"
	HealthLoggedOut     HealthState = "logged_out"
	HealthBadCredential HealthState = "bad_credentials"
	// HealthBanned: the network banned the bridge's own account (a
	// WhatsApp relay account banned or logged out as banned).
	HealthBanned HealthState = "banned"
)

// Health is a connector's state with a human-readable reason.
type Health struct {
	State   HealthState `json:"state"`
	Message string      `json:"message,omitempty"`
}
