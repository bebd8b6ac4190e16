package web

import "errors"

// ErrHomeserverURL is returned by New for a homeserver URL that is not an
// absolute http or https URL.
var ErrHomeserverURL = errors.New("web: homeserver URL must be an absolute http(s) URL")
