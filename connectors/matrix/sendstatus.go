package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// Message send status events: with appservice.message_status_events the
// bot answers each event sent from Matrix (message, edit, reaction,
// deletion) with a com.beeper.message_send_status event relating to it
// (m.reference) per destination network: SUCCESS once delivered,
// FAIL_RETRIABLE while the router retries, FAIL_PERMANENT when it gave up.
// They are sent in the background, after the delivery worker moved on, and
// are best effort: a full queue drops them (failures still get a notice).
// In encrypted portals they are encrypted like every bot event.

// sendStatusQueueSize bounds the status events waiting to be sent.
const sendStatusQueueSize = 1024

// sendStatusMemory bounds how many (event, network) outcomes are
// remembered to skip repeating a FAIL_RETRIABLE per retry.
const sendStatusMemory = 4096

type sendStatusKey struct {
	evt     id.EventID
	network bridge.NetworkID
}

type sendStatusJob struct {
	room    id.RoomID
	content *event.BeeperMessageStatusEventContent
}

// sendStatuses is the connector's status-event queue.
type sendStatuses struct {
	once  sync.Once
	queue chan sendStatusJob
	mu    sync.Mutex
	last  map[sendStatusKey]event.MessageStatus
}

// messageStatusContent builds the status event for rep, or nil when rep is
// nothing a Matrix client can show on an event.
func messageStatusContent(rep *bridge.StatusReport) *event.BeeperMessageStatusEventContent {
	if rep.Kind == bridge.KindReadReceipt || rep.Kind == bridge.KindTyping {
		return nil
	}
	target, err := eventID(rep.SourceID)
	if err != nil {
		return nil
	}
	content := &event.BeeperMessageStatusEventContent{
		Network:   string(rep.Destination.Network),
		RelatesTo: event.RelatesTo{Type: event.RelReference, EventID: target},
	}
	name := networkName(rep.Destination.Network)
	switch rep.State {
	case bridge.StateDelivered:
		content.Status = event.MessageStatusSuccess
		return content
	case bridge.StateRetrying:
		content.Status = event.MessageStatusRetriable
		content.Reason = event.MessageStatusNetworkError
		content.Message = fmt.Sprintf("Not delivered to %s yet; retrying.", name)
	case bridge.StateFailed:
		content.Status = event.MessageStatusFail
		content.Reason = event.MessageStatusNetworkError
		content.Message = fmt.Sprintf("Not delivered to %s.", name)
		if errors.Is(rep.Err, bridge.ErrNotSupported) {
			content.Reason = event.MessageStatusUnsupported
			content.Message = fmt.Sprintf("%s does not support this.", name)
		}
	default:
		return nil
	}
	if rep.Err != nil {
		content.InternalError = phone.Redact(rep.Err.Error())
	}
	return content
}

// queueSendStatus queues the status event for rep when the config asks for
// them.
func (c *Connector) queueSendStatus(ctx context.Context, room id.RoomID, rep *bridge.StatusReport) {
	if !c.cfg.Appservice.MessageStatusEvents || c.bgCtx == nil {
		return
	}
	content := messageStatusContent(rep)
	if content == nil {
		return
	}
	s := &c.statuses
	key := sendStatusKey{content.RelatesTo.EventID, rep.Destination.Network}
	s.mu.Lock()
	if s.last == nil || len(s.last) >= sendStatusMemory {
		s.last = make(map[sendStatusKey]event.MessageStatus)
	}
	repeated := s.last[key] == content.Status
	s.last[key] = content.Status
	s.mu.Unlock()
	if repeated {
		return
	}
	s.once.Do(func() {
		s.queue = make(chan sendStatusJob, sendStatusQueueSize)
		c.startBackground(c.sendStatusLoop)
	})
	select {
	case s.queue <- sendStatusJob{room: room, content: content}:
	default:
		zerolog.Ctx(ctx).Warn().Stringer("room_id", room).Msg("Message status queue full; status event dropped")
	}
}

// sendStatusLoop sends queued status events until Stop.
func (c *Connector) sendStatusLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-c.statuses.queue:
			c.sendStatusEvent(ctx, job.room, job.content)
		}
	}
}

// sendStatusEvent sends one status event from the bot (encrypted in an
// encrypted room). Failures are logged: it is a courtesy.
func (c *Connector) sendStatusEvent(ctx context.Context, room id.RoomID, content *event.BeeperMessageStatusEventContent) {
	ctx = c.mctx(ctx)
	typ, payload, err := c.maybeEncrypt(ctx, room, event.BeeperMessageStatus, content)
	if enc, ok := payload.(*event.EncryptedEventContent); ok && enc.RelatesTo == nil {
		// The relation stays readable outside the ciphertext, as Megolm
		// keeps it for messages, so clients place the status unencrypted.
		rel := content.RelatesTo
		enc.RelatesTo = &rel
	}
	if err == nil {
		_, err = c.as.BotIntent().SendMessageEvent(ctx, room, typ, payload)
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", room).Msg("Failed to send a message status event")
	}
}
