package bridgetest

import (
	"context"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// HistoryLoopback is a Loopback that also takes history
// (bridge.HistoryReceiver), as the Matrix connector does; a plain Loopback
// does not, as the SMS connector does not. Its history deliveries are
// recorded like messages: Sent.Delivery.Event.History tells them apart.
type HistoryLoopback struct {
	*Loopback
}

var _ bridge.HistoryReceiver = (*HistoryLoopback)(nil)

// NewHistoryLoopback returns a loopback connector that takes history.
func NewHistoryLoopback(network bridge.NetworkID) *HistoryLoopback {
	return &HistoryLoopback{Loopback: NewLoopback(network)}
}

// SendHistory implements bridge.HistoryReceiver.
func (c *HistoryLoopback) SendHistory(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	return c.record(ctx, bridge.KindMessage, d, d.Event.Content != nil && d.Event.Content.Type.IsMedia())
}
