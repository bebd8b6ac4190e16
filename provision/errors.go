package provision

import (
	"errors"
	"net/http"
)

// Errcodes are the stable `errcode` values of error answers
// (docs/provisioning.md lists when each is used).
const (
	CodeBadJSON          = "SB_BAD_JSON"
	CodeBadRequest       = "SB_BAD_REQUEST"
	CodeUnauthorized     = "SB_UNAUTHORIZED"
	CodeForbidden        = "SB_FORBIDDEN"
	CodeNotFound         = "SB_NOT_FOUND"
	CodeMethodNotAllowed = "SB_METHOD_NOT_ALLOWED"
	CodeConflict         = "SB_CONFLICT"
	CodeSMSNotOptedIn    = "SB_SMS_NOT_OPTED_IN"
	CodeTooLarge         = "SB_TOO_LARGE"
	CodeRefused          = "SB_REFUSED"
	CodeRateLimited      = "SB_RATE_LIMITED"
	CodeUnsupported      = "SB_UNSUPPORTED"
	CodeUnknown          = "SB_UNKNOWN"
)

var (
	// ErrOpenIDServer means an OpenID token names a server the bridge
	// does not ask (not the bridge's own domain, and not named in
	// permissions): no request is made to it.
	ErrOpenIDServer = errors.New("server not allowed for OpenID verification")
	// ErrOpenIDToken means the homeserver did not confirm the token for
	// the user (unknown, expired, or another user's).
	ErrOpenIDToken = errors.New("OpenID token not confirmed")
	// ErrOpenIDUnreachable means the homeserver could not be asked.
	ErrOpenIDUnreachable = errors.New("homeserver unreachable for OpenID verification")
)

// Error is an error answer: an HTTP status, a stable errcode and a
// message for humans (often the bot's answer text, with numbers redacted).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"errcode"`
	Message string `json:"error"`
	// RetryAfterMS is set with CodeRateLimited when the limit says when.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

var (
	errUnauthorized = errorf(http.StatusUnauthorized, CodeUnauthorized,
		"missing or invalid credentials: send 'Authorization: Bearer <shared secret>' or 'Bearer openid:<token>' with ?user_id=")
	errNotFound  = errorf(http.StatusNotFound, CodeNotFound, "no such endpoint")
	errNoMethod  = errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed for this endpoint")
	errInternal  = errorf(http.StatusInternalServerError, CodeUnknown, "internal error; please try again")
	errTooLarge  = errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large")
	errNoLogin   = errorf(http.StatusNotFound, CodeNotFound, "no such login (it ended a while ago, or is not yours)")
	errNoPortal  = errorf(http.StatusNotFound, CodeNotFound, "that room is not one of your bridged conversations")
	errTooMany   = errorf(http.StatusTooManyRequests, CodeRateLimited, "too many logins in progress on this bridge; try again in a few minutes")
	errNoNetwork = errorf(http.StatusNotImplemented, CodeUnsupported, "WhatsApp is not configured on this bridge")
)
