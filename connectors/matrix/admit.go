package matrix

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// admitSender decides whether an event from a Matrix room may be bridged.
// In a portal, its owner is always bridged and anyone else only with at
// least relay permission; a refused sender of a message or edit is told
// once. A permitted sender who is not the owner is marked a guest, so
// one-to-one destinations name them. Outside portals (legs the bridge did
// not create, rooms that are no leg) only the permission level counts, and
// a refusal there is silent: the room may be anyone's.
func (c *Connector) admitSender(ctx context.Context, evt *bridge.Event) (bool, error) {
	room, err := roomID(evt.Source.Chat)
	if err != nil {
		return false, nil
	}
	user := id.UserID(evt.Sender.ID)
	portal, err := c.getPortal(ctx, room)
	if err != nil {
		return false, err
	}
	if portal != nil && portal.Owner == user {
		return true, nil
	}
	if c.mayUse(user) {
		if portal != nil {
			evt.Sender.Guest = true
			if strings.TrimSpace(evt.Sender.DisplayName) == "" {
				localpart, _, _ := user.Parse()
				evt.Sender.DisplayName = phone.Redact(localpart)
			}
		}
		return true, nil
	}
	if portal != nil && (evt.Kind == bridge.KindMessage || evt.Kind == bridge.KindEdit) {
		if won, cerr := c.claim(ctx, string(evt.SourceID)+"/denied"); cerr == nil && won {
			c.sendNotice(ctx, room, id.EventID(evt.SourceID),
				"⚠️ Your message was not delivered: you are not allowed to use this bridge. Only the person this chat belongs to, and users the bridge admin allows, are bridged.")
		}
	}
	return false, nil
}
