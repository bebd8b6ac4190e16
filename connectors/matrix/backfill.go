package matrix

import (
	"context"

	"github.com/switchboard-bridge/switchboard/bridge"
)

var _ bridge.HistoryReceiver = (*Connector)(nil)

// SendHistory implements bridge.HistoryReceiver: an earlier message of
// another network (WhatsApp's history sync, `backfill N`) is sent into the
// portal as its sender's ghost, like a live one, at its original time
// through the appservice timestamp override (`ts`, what mautrix's
// SendMassagedMessageEvent does), so clients show WhatsApp's time and
// `origin_server_ts` carries it.
//
// What "no notifications" can be on a plain homeserver: MSC2716 batch
// sending is gone from Synapse and absent from Dendrite and conduwuit
// (bridgev2 batch-sends only to Beeper's servers), so history is appended
// to the room's timeline after what is already there, in the order the
// router delivers it (oldest first), and push rules apply as to any
// message. The bridge mentions nobody in it (an empty m.mentions on text,
// so no highlight) and does not mark it read for the user (that would
// take the user's own account: double puppeting).
func (c *Connector) SendHistory(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	if d.Event.Content != nil && d.Event.Content.Type.IsMedia() {
		return c.SendMedia(ctx, d)
	}
	return c.SendMessage(ctx, d)
}
