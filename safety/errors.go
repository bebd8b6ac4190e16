package safety

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrSuspended means the user is suspended pending admin review. Its
	// text is what the user is told.
	ErrSuspended = errors.New("your use of this bridge is suspended pending review by the bridge admins")
	// ErrLimited means a rate or fan-out limit was reached.
	ErrLimited = errors.New("limit reached")
	// ErrNoContact means a room has no contact the bridge knows of (not a
	// bridged room, or nobody has written in it yet).
	ErrNoContact = errors.New("no contact known for this room")
	// ErrDatabase wraps database failures.
	ErrDatabase = errors.New("safety database error")
)

// LimitError says which limit was reached and when the sender may try
// again. It wraps ErrLimited.
type LimitError struct {
	// Limit names the limit (a Limit constant).
	Limit Limit
	// Max is the configured limit, Per its period.
	Max int
	Per time.Duration
	// RetryAfter is how long until the limit allows another one.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: %s allows %d per %s; try again in %s",
		ErrLimited.Error(), e.Limit.describe(), e.Max, humanPeriod(e.Per), humanDuration(e.RetryAfter))
}

// Is makes errors.Is(err, ErrLimited) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// Limit names a limit, for errors and metrics.
type Limit string

// Limits.
const (
	LimitSender       Limit = "sender"
	LimitConversation Limit = "conversation"
	LimitInbound      Limit = "inbound"
	LimitNewChats     Limit = "new_chats"
	LimitHighCost     Limit = "high_cost"
)

func (l Limit) describe() string {
	switch l {
	case LimitSender:
		return "the bridge's per-sender limit"
	case LimitConversation:
		return "this conversation's limit"
	case LimitInbound:
		return "the limit for messages from one contact"
	case LimitNewChats:
		return "safety.new_chats_per_hour"
	case LimitHighCost:
		return "the limit for SMS to high-cost destinations"
	}
	return string(l)
}

func humanPeriod(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	}
	return d.String()
}

// humanDuration rounds a wait up to whole seconds or minutes.
func humanDuration(d time.Duration) string {
	switch {
	case d <= time.Second:
		return "1s"
	case d < 2*time.Minute:
		return (d + time.Second - 1).Truncate(time.Second).String()
	default:
		m := int((d + time.Minute - 1) / time.Minute)
		return fmt.Sprintf("%d minutes", m)
	}
}

// windowText shows a window like "24h" or "90m".
func windowText(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
