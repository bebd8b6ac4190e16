package identity

import "errors"

var (
	// ErrDatabase wraps database failures.
	ErrDatabase = errors.New("identity database error")
	// ErrInvalidPreference means a preference value is not one of the allowed ones.
	ErrInvalidPreference = errors.New("invalid preference")
)
