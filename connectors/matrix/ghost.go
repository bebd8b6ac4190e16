package matrix

import (
	"context"
	"encoding/base32"
	"strings"
	"unicode"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// opaqueLength is how many base32 characters of the keyed hash a ghost
// localpart keeps: 80 bits, enough that two contacts never collide.
const opaqueLength = 16

var ghostEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ghostKeyLabel separates the ghost key from other keys derived from
// identity.secret.
const ghostKeyLabel = keyring.MatrixGhost

// deriveKey derives the ghost key the way it always was (keyring.HMACKey):
// ghost user IDs are permanent.
func deriveKey(secret []byte, label string) []byte { return keyring.HMACKey(secret, label) }

// GhostOpaque returns the opaque part of the ghost localpart for a remote
// user: lowercase base32 of HMAC-SHA256(key, network ":" remote user ID),
// truncated. It never contains the remote ID itself (such as the digits of
// a phone number).
//
// Phone contacts (identity pseudonyms) get one ghost whichever phone
// network (SMS, WhatsApp) they write from: one person, one participant.
func GhostOpaque(key []byte, network bridge.NetworkID, remote bridge.UserID) string {
	if identity.IsPhonePseudonym(remote) {
		network = "phone"
	}
	sum := keyring.Sum(key, string(network)+":"+string(remote))
	return strings.ToLower(ghostEncoding.EncodeToString(sum))[:opaqueLength]
}

// GhostUserID returns the Matrix user ID of the ghost that stands for a
// remote user on this bridge.
func (c *Connector) GhostUserID(network bridge.NetworkID, remote bridge.UserID) id.UserID {
	return id.NewUserID(c.cfg.Appservice.GhostPrefix+GhostOpaque(c.ghostKey, network, remote), c.cfg.Homeserver.Domain)
}

// IsGhost reports whether userID is in the bridge's ghost namespace.
func (c *Connector) IsGhost(userID id.UserID) bool {
	localpart, server, err := userID.Parse()
	return err == nil && server == c.cfg.Homeserver.Domain &&
		strings.HasPrefix(localpart, c.cfg.Appservice.GhostPrefix) &&
		len(localpart) > len(c.cfg.Appservice.GhostPrefix)
}

// maxNameLength bounds display and room names, in runes.
const maxNameLength = 100

// SafeDisplayName returns the name a contact is shown under on Matrix: its
// own display name when it has one that carries no phone number, otherwise
// a stable pseudonym "Contact <first four characters of the opaque ID>".
func SafeDisplayName(name, opaque string) string {
	name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name))
	if name == "" || phone.Contains(name) {
		return "Contact " + opaque[:4]
	}
	if runes := []rune(name); len(runes) > maxNameLength {
		name = string(runes[:maxNameLength])
	}
	return name
}

// contactName is the display name a contact's ghost gets: the number when
// the contact linked it and chose `reveal on`, otherwise SafeDisplayName.
func (c *Connector) contactName(ctx context.Context, sender bridge.Sender, opaque string) string {
	if store := c.identityStore(); store != nil && identity.IsPhonePseudonym(sender.ID) {
		number, ok, err := store.RevealedNumber(ctx, string(sender.ID))
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to check whether a contact revealed their number")
		} else if ok {
			return number
		}
	}
	return SafeDisplayName(sender.DisplayName, opaque)
}
