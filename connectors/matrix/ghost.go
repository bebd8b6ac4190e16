package matrix

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"unicode"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/identity"
)

// opaqueLength is how many base32 characters of the keyed hash a ghost
// localpart keeps: 80 bits, enough that two contacts never collide.
const opaqueLength = 16

var ghostEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ghostKeyLabel separates the ghost key from other keys derived from
// identity.secret.
const ghostKeyLabel = "switchboard/matrix/ghost/v1"

func deriveKey(secret []byte, label string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(label))
	return mac.Sum(nil)
}

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
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(string(network) + ":" + string(remote)))
	return strings.ToLower(ghostEncoding.EncodeToString(mac.Sum(nil)))[:opaqueLength]
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

// minPhoneDigits is how many digits in a row (separators allowed) make a
// string look like it carries a phone number.
const minPhoneDigits = 7

// ContainsPhoneNumber reports whether s holds something that may be a
// phone number: a run of at least seven digits, where spaces, dashes, dots,
// slashes and parentheses between the digits do not break the run.
func ContainsPhoneNumber(s string) bool {
	return len(phoneRuns(s)) > 0
}

// phoneRuns returns the [start, end) byte ranges of phone-like runs in s.
func phoneRuns(s string) [][2]int {
	var runs [][2]int
	start, last, digits := -1, -1, 0
	flush := func() {
		if digits >= minPhoneDigits {
			runs = append(runs, [2]int{start, last})
		}
		start, last, digits = -1, -1, 0
	}
	for i, r := range s {
		switch {
		case unicode.IsDigit(r):
			if start < 0 {
				start = i
			}
			digits++
			last = i + len(string(r))
		case start >= 0 && strings.ContainsRune(" -./()\u00a0", r):
		case r == '+' && start < 0:
		default:
			flush()
		}
	}
	flush()
	return runs
}

// RedactPhoneNumbers replaces every phone-like run in s with "[number]", for
// text that is shown to users or logged.
func RedactPhoneNumbers(s string) string {
	runs := phoneRuns(s)
	if len(runs) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, r := range runs {
		start := r[0]
		if start > 0 && s[start-1] == '+' {
			start--
		}
		b.WriteString(s[prev:start])
		b.WriteString("[number]")
		prev = r[1]
	}
	b.WriteString(s[prev:])
	return b.String()
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
	if name == "" || ContainsPhoneNumber(name) {
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
