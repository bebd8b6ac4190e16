package provision

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"maunium.net/go/mautrix/id"
)

// secretMatches compares token with the shared secret in constant time
// (hashing both first, so the time does not depend on their lengths). An
// empty secret matches nothing.
func secretMatches(secret, token string) bool {
	if secret == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// serverOf returns the server name of a Matrix user ID, and whether the
// ID is valid.
func serverOf(user string) (string, bool) {
	if len(user) > 255 {
		return "", false
	}
	localpart, server, err := id.UserID(user).Parse()
	if err != nil || localpart == "" || server == "" {
		return "", false
	}
	return server, true
}

// openIDRefusal is what the client is told about a refused token.
func openIDRefusal(err error) string {
	switch {
	case errors.Is(err, ErrOpenIDServer):
		return "this bridge does not verify OpenID tokens of users on that server"
	case errors.Is(err, ErrOpenIDUnreachable):
		return "could not verify the OpenID token with the homeserver; try again"
	}
	return "the OpenID token is invalid or expired, or belongs to another user; request a new one"
}
