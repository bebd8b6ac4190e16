package matrix

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"

	"github.com/switchboard-bridge/switchboard/bridge"
)

var (
	// ErrConfig means the configuration lacks something the connector needs.
	ErrConfig = errors.New("matrix: invalid configuration")
	// ErrNotStarted means the connector was used before Start or after Stop.
	ErrNotStarted = errors.New("matrix: connector is not running")
	// ErrInvalidChat means a ChatID is not a Matrix room ID.
	ErrInvalidChat = errors.New("matrix: chat is not a room ID")
	// ErrInvalidRemoteID means a RemoteID is not a Matrix event ID.
	ErrInvalidRemoteID = errors.New("matrix: remote ID is not an event ID")
	// ErrHomeserver wraps failed requests to the homeserver.
	ErrHomeserver = errors.New("matrix: homeserver request failed")
	// ErrDatabase wraps failures of the connector's own tables.
	ErrDatabase = errors.New("matrix: database error")
	// ErrMediaTooLarge means an attachment exceeds MaxMediaSize.
	ErrMediaTooLarge = bridge.ErrMediaTooLarge
	// ErrEncryptionNotReady means end-to-end encryption is on and this
	// process owns the bot device, but its Olm machine has not started yet
	// (login or key upload pending). It is transient: try again later.
	ErrEncryptionNotReady = errors.New("matrix: end-to-end encryption is not started yet")
	// ErrNotAnImage means an avatar to set is not an image.
	ErrNotAnImage = errors.New("matrix: not an image")
	// ErrCrossSigningAuth means the homeserver wants interactive
	// authentication the bot cannot give before it accepts the bot's
	// cross-signing keys (crosssign.go).
	ErrCrossSigningAuth = errors.New("matrix: the homeserver refused the bot's cross-signing keys without authentication")
	// ErrCrossSigningMismatch means the homeserver publishes another
	// master key for the bot than the one the database holds.
	ErrCrossSigningMismatch = errors.New("matrix: the homeserver has another cross-signing master key for the bot")
	// ErrCrossSigningForeign means the homeserver publishes cross-signing
	// keys for the bot that the database has no private keys of.
	ErrCrossSigningForeign = errors.New("matrix: the homeserver has cross-signing keys for the bot that this bridge did not make")
)

// classify turns an error from the homeserver into what the router expects:
// 429 becomes a *bridge.RetryAfterError, other 4xx answers are permanent
// (retrying the same request cannot succeed), and everything else (5xx,
// network errors) stays transient.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%w: %s: %w", ErrHomeserver, op, err)
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil {
		return wrapped
	}
	status := httpErr.Response.StatusCode
	switch {
	case status == http.StatusTooManyRequests:
		after := 5 * time.Second
		if httpErr.RespError != nil {
			if ms, ok := httpErr.RespError.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
				after = time.Duration(ms) * time.Millisecond
			}
		}
		if s, err := strconv.Atoi(httpErr.Response.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return &bridge.RetryAfterError{After: after, Err: wrapped}
	case status >= 400 && status < 500:
		return bridge.Permanent(wrapped)
	}
	return wrapped
}
