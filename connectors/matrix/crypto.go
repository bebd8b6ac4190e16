package matrix

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// ErrEncryptionUnavailable means the binary was built without end-to-end
// encryption (the goolm build tag) or encryption.allow is off.
var ErrEncryptionUnavailable = errors.New("matrix: end-to-end encryption is not available in this build")

// cryptor is the bot's end-to-end encryption: an Olm account whose state
// lives in the shared database, kept current by a /sync loop as the bot
// (Dendrite sends no to-device events or device lists to appservices).
// Ghosts' messages in encrypted rooms are encrypted with the bot's Megolm
// session, as mautrix bridges do.
type cryptor interface {
	// start logs the bot's device in (once; later starts reuse it),
	// uploads its keys and starts the sync loop.
	start(ctx context.Context) error
	stop()
	// decrypt decrypts an m.room.encrypted event, waiting a little for a
	// room key that is still on its way.
	decrypt(ctx context.Context, evt *event.Event) (*event.Event, error)
	// encrypt encrypts content for a room, sharing the Megolm session with
	// the room's members' devices first when needed.
	encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error)
}

// EncryptionAvailable reports whether this build can bridge encrypted rooms
// (built with the goolm tag and encryption.allow on).
func (c *Connector) EncryptionAvailable() bool { return c.crypto != nil }
