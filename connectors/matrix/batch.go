package matrix

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// maxBatch bounds the events of a transaction accepted in one commit.
const maxBatch = 100

// txnBatch collects the consecutive plain events of a transaction
// (messages, stickers, reactions, redactions in portals) so the router
// accepts them in one commit (bridge.BatchSubmitter) instead of one
// commit each. It is flushed, in order, before any other event of the
// transaction is handled and before the transaction is acknowledged, so
// every effect keeps the transaction's order and nothing is acknowledged
// before it is committed.
type txnBatch struct {
	bs      bridge.BatchSubmitter
	current *event.Event
	evts    []*event.Event
	outs    []*bridge.Event
	// logs are the events' loggers (handleEvent's, with their IDs), for
	// what their outcomes log.
	logs []*zerolog.Logger
}

type batchKey struct{}

// deferSubmit adds out, made from the event being handled, to the batch
// of ctx, if there is one.
func deferSubmit(ctx context.Context, out *bridge.Event) bool {
	b, _ := ctx.Value(batchKey{}).(*txnBatch)
	if b == nil || b.current == nil {
		return false
	}
	b.evts = append(b.evts, b.current)
	b.outs = append(b.outs, out)
	b.logs = append(b.logs, zerolog.Ctx(ctx))
	b.current = nil
	return true
}

// batchable reports whether an event can join the batch: a message,
// sticker, reaction or redaction from someone else than the bridge, in a
// portal, that is not a bot command. Its handling then has no effect
// before its submission other than a refusal notice, and its outcome is
// handled after the flush (flushBatch). Anything else is handled alone.
//
// A message's content is parsed here, once: handleEvent finds it parsed.
// Content that does not parse is left unparsed, for handleEvent to find
// so again, and the event is handled alone.
func (c *Connector) batchable(ctx context.Context, evt *event.Event) bool {
	if evt.StateKey != nil || c.ownEcho(evt) {
		return false
	}
	switch evt.Type {
	case event.EventReaction, event.EventRedaction, event.EventSticker:
	case event.EventMessage:
		if parseContent(evt) != nil {
			evt.Content.Parsed = nil
			return false
		}
		content := evt.Content.AsMessage()
		body := strings.TrimSpace(content.Body)
		if content.MsgType == event.MsgText && (strings.HasPrefix(body, CommandPrefix) || body == strings.TrimSpace(CommandPrefix)) {
			return false
		}
	default:
		return false
	}
	if p, err := c.getPortal(ctx, evt.RoomID); err != nil || p == nil {
		return false
	}
	owner, err := c.managementRoomUser(ctx, evt.RoomID)
	return err == nil && owner == ""
}

// flushBatch accepts the batched events in one commit and handles each
// outcome as processEvent does for an event handled alone. It returns an
// error when the homeserver should send the transaction again.
func (c *Connector) flushBatch(ctx context.Context, b *txnBatch) error {
	if b == nil || len(b.outs) == 0 {
		return nil
	}
	evts, outs, logs := b.evts, b.outs, b.logs
	b.evts, b.outs, b.logs = nil, nil, nil
	errs := c.submitBatch(ctx, b.bs, outs)
	for i, evt := range evts {
		err := c.submitOutcome(ctx, logs[i], evt, outs[i], errs[i])
		if err = c.eventOutcome(ctx, evt, err); err != nil {
			return err
		}
	}
	return nil
}

// submitBatch calls SubmitBatch, turning a panic into an error for every
// event.
func (c *Connector) submitBatch(ctx context.Context, bs bridge.BatchSubmitter, outs []*bridge.Event) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			zerolog.Ctx(ctx).Error().Str("panic", fmt.Sprint(p)).Int("events", len(outs)).Msg("Recovered panic while submitting a batch")
			errs = make([]error, len(outs))
			for i := range errs {
				errs[i] = &bridge.PanicError{Value: p}
			}
		}
	}()
	errs = bs.SubmitBatch(ctx, outs)
	if len(errs) != len(outs) {
		errs = make([]error, len(outs))
		for i := range errs {
			errs[i] = fmt.Errorf("%w: batch answered for another number of events", ErrDatabase)
		}
	}
	return errs
}

// submitOutcome is what submit and its caller do with the router's
// answer for an event that was batched: the same as for one submitted
// alone. log is the event's logger.
func (c *Connector) submitOutcome(ctx context.Context, log *zerolog.Logger, evt *event.Event, out *bridge.Event, err error) error {
	if err == nil {
		// submitResult's answer to success, without making a context
		// for its log line.
		log.Trace().Str("kind", string(out.Kind)).Msg("Submitted event")
		return nil
	}
	ctx = log.WithContext(ctx)
	unknown, err := c.submitResult(ctx, out, err)
	if err != nil || !unknown || evt.Type != event.EventMessage || out.Kind != bridge.KindMessage {
		return err
	}
	return c.unbridgedMessage(ctx, evt, evt.Content.AsMessage())
}
