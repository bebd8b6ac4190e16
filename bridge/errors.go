package bridge

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotSupported means the destination connector lacks the capability an
	// event needs (edits, reactions, ...). It is a permanent failure that is
	// reported to the sender.
	ErrNotSupported = errors.New("not supported by the destination network")
	// ErrPermanent marks a delivery failure that retrying cannot fix.
	ErrPermanent = errors.New("permanent delivery failure")
	// ErrUnknownLeg means an event arrived for a chat that belongs to no conversation.
	ErrUnknownLeg = errors.New("chat is not part of any conversation")
	// ErrUnknownNetwork means no connector is registered for a network.
	ErrUnknownNetwork = errors.New("no connector for network")
	// ErrInvalidEvent means an event failed validation; nothing was accepted.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrMediaTooLarge means an attachment is larger than the network
	// receiving it takes (see Delivery.ReadMedia).
	ErrMediaTooLarge = errors.New("attachment too large")
	// ErrInvalidAddress means an address is not "network:identifier".
	ErrInvalidAddress = errors.New("invalid address")
	// ErrTargetUnknown means an edit, reply, reaction or delete names a message
	// the bridge has no mapping for on the destination leg.
	ErrTargetUnknown = errors.New("target message is not known on this leg")
	// ErrConnectorPanic wraps a panic recovered from connector code.
	ErrConnectorPanic = errors.New("connector panicked")
	// ErrStopped is returned by Submit once the router is stopping.
	ErrStopped = errors.New("router stopped")
	// ErrDatabase wraps database failures.
	ErrDatabase = errors.New("database error")
	// ErrSeal wraps failures to seal or open a queued payload.
	ErrSeal = errors.New("payload sealing failed")
	// ErrLegInUse means a chat already belongs to another conversation.
	ErrLegInUse = errors.New("chat already belongs to a conversation")
	// ErrRefused means the Admitter refused an event (a suspended sender,
	// a rate limit): nothing was accepted, and the source connector should
	// tell the sender why. See RefusedError.
	ErrRefused = errors.New("refused by the bridge")
	// ErrPaced is returned (inside a *RetryAfterError, see Paced) by a
	// connector that holds a delivery back to respect its network's
	// throughput. It is not a failure: the router sends the delivery again
	// after the wait without counting an attempt, telling the sender, or
	// ever giving up.
	ErrPaced = errors.New("paced")
)

// RefusedError is an Admitter's refusal. Reason is shown to the sender.
type RefusedError struct {
	Reason string
	// RetryAfter is when the sender may try again (0: not by waiting).
	RetryAfter time.Duration
	// Repeat is true when the sender was already refused for the same
	// reason recently, so a connector that pays to tell them (SMS) may
	// stay quiet.
	Repeat bool
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Err != nil && e.Err.Error() != e.Reason {
		return fmt.Sprintf("%s: %v", e.Reason, e.Err)
	}
	return e.Reason
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func (e *RefusedError) Unwrap() error { return e.Err }

// Paced returns the error a connector's send returns to have the router
// deliver again after wait, without counting an attempt (see ErrPaced).
func Paced(wait time.Duration) error {
	return &RetryAfterError{After: wait, Err: ErrPaced}
}

// NotSupportedError says which capability a network lacks.
type NotSupportedError struct {
	Network    NetworkID
	Capability string
}

func (e *NotSupportedError) Error() string {
	return fmt.Sprintf("%s on %s: %s", e.Capability, e.Network, ErrNotSupported.Error())
}

// Is makes errors.Is(err, ErrNotSupported) and errors.Is(err, ErrPermanent) true.
func (e *NotSupportedError) Is(target error) bool {
	return target == ErrNotSupported || target == ErrPermanent
}

// RetryAfterError asks the router to retry no sooner than After (HTTP 429
// with Retry-After, say).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// Permanent marks err as a permanent failure: the router stops retrying and
// reports it to the sender.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// PanicError carries a recovered panic value and its stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("%s: %v", ErrConnectorPanic.Error(), e.Value) }

// Is makes a recovered panic a permanent connector failure: the same input
// would panic again.
func (e *PanicError) Is(target error) bool {
	return target == ErrConnectorPanic || target == ErrPermanent
}
