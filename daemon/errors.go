package daemon

import "errors"

// ErrNoEncryption: encryption.allow is true in a binary built without the
// goolm build tag, which has no end-to-end encryption.
var ErrNoEncryption = errors.New("encryption.allow is true but this binary was built without the goolm build tag (go build -tags goolm), so it cannot encrypt; rebuild with it or set encryption.allow: false")
