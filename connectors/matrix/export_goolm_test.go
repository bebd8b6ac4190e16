//go:build goolm

package matrix

import (
	"context"

	"maunium.net/go/mautrix/event"
)

// DecryptEventForTest decrypts an m.room.encrypted event with the bot's
// Olm machine. The bot keeps the inbound session of its own outbound
// Megolm session, so tests can read what ghosts sent into encrypted rooms.
func (c *Connector) DecryptEventForTest(ctx context.Context, evt *event.Event) (*event.Event, error) {
	return c.crypto.decrypt(ctx, evt)
}
