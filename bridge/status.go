package bridge

import (
	"context"
	"errors"
	"fmt"
)

const sourceCopyQuery = `
	SELECT network, chat_id, remote_id, conversation_id FROM sb_message
	WHERE message_id=$1 AND NOT (network=$2 AND chat_id=$3)
	ORDER BY created_at, network, chat_id LIMIT 1`

// ReportStatus tells the leg a message came from what happened to it on
// dest after the router handed it over — for example an SMS that the
// carrier reported undelivered minutes later. The source is the message's
// earliest map row on another leg (the row written when it was accepted). A message the bridge no
// longer knows (expired, say) is not reported and ErrTargetUnknown returned.
func (r *Router) ReportStatus(ctx context.Context, msg MessageID, dest Leg, state DeliveryState, cause error) error {
	var src Leg
	var srcID RemoteID
	var conv ConversationID
	err := r.db.QueryRow(ctx, sourceCopyQuery, msg, dest.Network, dest.Chat).Scan(&src.Network, &src.Chat, &srcID, &conv)
	if errors.Is(err, sqlNoRows) {
		return fmt.Errorf("%w: message %s", ErrTargetUnknown, msg)
	} else if err != nil {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	rep := &StatusReport{
		Conversation: conv,
		Message:      msg,
		Source:       src,
		SourceID:     srcID,
		Kind:         KindMessage,
		Destination:  dest,
		State:        state,
		Err:          cause,
	}
	if state == StateFailed {
		r.metrics.messages.WithLabelValues(string(dest.Network), "out", "failed").Inc()
	}
	receiver, ok := r.connectors[src.Network].(StatusReceiver)
	if !ok {
		return nil
	}
	return safeCall(r, src.Network, "status", func() error {
		receiver.HandleStatus(ctx, rep)
		return nil
	})
}
