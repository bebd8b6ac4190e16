package identity

import "errors"

var (
	// ErrDatabase wraps database failures.
	ErrDatabase = errors.New("identity database error")
	// ErrInvalidPreference means a preference value is not one of the allowed ones.
	ErrInvalidPreference = errors.New("invalid preference")
)

var (
	// ErrInvalidSecret means identity.secret cannot key the vault.
	ErrInvalidSecret = errors.New("invalid identity secret")
	// ErrSealed means a sealed value could not be opened (wrong key, row or tampering).
	ErrSealed = errors.New("sealed value cannot be opened")
	// ErrNoPendingCode means there is no verification in progress.
	ErrNoPendingCode = errors.New("no verification code is pending; send `link +N` first")
	// ErrCodeExpired means the code is older than its lifetime.
	ErrCodeExpired = errors.New("that code has expired; send `link +N` again")
	// ErrWrongCode means the code does not match.
	ErrWrongCode = errors.New("that code is not right")
	// ErrTooManyTries means the code was locked after too many wrong tries.
	ErrTooManyTries = errors.New("too many wrong codes; send `link +N` again later")
	// ErrRateLimited means too many codes were requested recently.
	ErrRateLimited = errors.New("too many codes requested; try again later")
)
