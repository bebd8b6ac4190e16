package matrix

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// eventBudget bounds the handling of one event of a transaction, so one
// slow event cannot use up the homeserver's patience for all of them.
const eventBudget = 20 * time.Second

// maxEventAttempts is how many transactions may fail on one event for a
// transient reason of the bridge's own before the event is set aside.
const maxEventAttempts = 5

// maxTrackedFailures bounds the in-memory failure counts.
const maxTrackedFailures = 10000

// AdminNotifier tells the bridge's admins something (the daemon wires it to
// the safety service's flags). key deduplicates repeated flags.
type AdminNotifier func(ctx context.Context, key, text string)

// SetAdminNotifier installs how the connector tells admins about events it
// had to set aside.
func (c *Connector) SetAdminNotifier(fn AdminNotifier) {
	c.mu.Lock()
	c.adminNotify = fn
	c.mu.Unlock()
}

// failures counts transient failures per event across transactions.
type failures struct {
	mu     sync.Mutex
	counts map[id.EventID]int
}

// add counts a failure and returns the count so far.
func (f *failures) add(evt id.EventID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil || len(f.counts) >= maxTrackedFailures {
		f.counts = make(map[id.EventID]int)
	}
	f.counts[evt]++
	return f.counts[evt]
}

func (f *failures) forget(evt id.EventID) {
	f.mu.Lock()
	delete(f.counts, evt)
	f.mu.Unlock()
}

// isTransient reports whether an event failed for a passing reason of the
// bridge's own (its database, its router, its encryption not started yet,
// a handler out of time), so the homeserver should send the transaction
// again. Everything else is about the event itself: retrying cannot help.
func isTransient(err error) bool {
	for _, target := range []error{
		ErrDatabase, ErrNotStarted, ErrEncryptionNotReady,
		bridge.ErrDatabase, bridge.ErrStopped, bridge.ErrSeal,
		context.DeadlineExceeded, context.Canceled,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// reasonOf names a failure's category for the set-aside record and the
// admins: never the error text, which may carry URLs or content.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrEncryptionNotReady):
		return "encryption not ready"
	case errors.Is(err, ErrDatabase), errors.Is(err, bridge.ErrDatabase):
		return "database"
	case errors.Is(err, bridge.ErrStopped), errors.Is(err, ErrNotStarted):
		return "stopped"
	case errors.Is(err, bridge.ErrSeal):
		return "sealing"
	case errors.Is(err, bridge.ErrConnectorPanic):
		return "panic"
	}
	return "error"
}

// handleGuarded handles one event of a transaction within eventBudget,
// turning a panic into an error about the event.
func (c *Connector) handleGuarded(ctx context.Context, evt *event.Event) (err error) {
	ctx, cancel := context.WithTimeout(ctx, eventBudget)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			zerolog.Ctx(ctx).Error().
				Str("panic", fmt.Sprint(p)).
				Bytes("stack", debug.Stack()).
				Stringer("event_id", evt.ID).
				Stringer("room_id", evt.RoomID).
				Str("event_type", evt.Type.Type).
				Msg("Recovered panic while handling an event; the event is skipped")
			err = &bridge.PanicError{Value: p}
		}
	}()
	return c.handleEvent(ctx, evt)
}

// processEvent handles one event of a transaction and decides what its
// outcome means for the transaction: nil when the transaction may go on
// (handled, skipped for what the event is, or set aside), a transient
// error when the homeserver should send the transaction again.
func (c *Connector) processEvent(ctx context.Context, evt *event.Event) error {
	return c.eventOutcome(ctx, evt, c.handleGuarded(ctx, evt))
}

// eventOutcome decides what an event's handling error means for the
// transaction (see processEvent).
func (c *Connector) eventOutcome(ctx context.Context, evt *event.Event, err error) error {
	if err == nil {
		return nil
	}
	log := zerolog.Ctx(ctx).With().
		Stringer("event_id", evt.ID).
		Stringer("room_id", evt.RoomID).
		Stringer("sender", evt.Sender).
		Str("event_type", evt.Type.Type).
		Str("reason", reasonOf(err)).
		Logger()
	if ctx.Err() != nil {
		// The homeserver gave up on this request; it sends it again.
		return ctx.Err()
	}
	if !isTransient(err) {
		log.Warn().Err(err).Msg("Event not handled; skipped")
		return nil
	}
	if n := c.failed.add(evt.ID); n < maxEventAttempts {
		log.Warn().Err(err).Int("attempt", n).Msg("Event failed for a passing reason; asking the homeserver to retry")
		return err
	}
	// The event keeps failing: set it aside so everything behind it goes on.
	first, serr := c.setAside(ctx, evt.ID, evt.RoomID, reasonOf(err))
	if serr != nil {
		log.Error().Err(serr).Msg("Failed to set a failing event aside")
		return err
	}
	c.failed.forget(evt.ID)
	log.Error().Err(err).Int("attempts", maxEventAttempts).Msg("Event kept failing; set aside")
	if first {
		c.tellAdmins(ctx, "matrix-setaside:"+string(evt.ID), fmt.Sprintf(
			"⚠️ The bridge set aside a Matrix event that failed %d times (%s): event %s in room %s from %s. It was not bridged.",
			maxEventAttempts, reasonOf(err), evt.ID, evt.RoomID, evt.Sender))
	}
	return nil
}

// tellAdmins hands text to the admin notifier, if any, on a context of
// its own (the request's may be nearly spent).
func (c *Connector) tellAdmins(ctx context.Context, key, text string) {
	c.mu.RLock()
	fn := c.adminNotify
	c.mu.RUnlock()
	if fn == nil {
		zerolog.Ctx(ctx).Warn().Msg("No admin notifier: set-aside event not reported")
		return
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	fn(nctx, key, phone.Redact(text))
}
