package web

import "errors"

// ErrHomeserverURL is returned by New for a homeserver URL that is not an
// absolute http or https URL.
var ErrHomeserverURL = errors.New("web: homeserver URL must be an absolute http(s) URL")

// ErrTemplate is returned by New when the embedded index.html does not hold
// exactly one homeserver slot (a build mistake).
var ErrTemplate = errors.New("web: index.html must hold exactly one homeserver slot")
