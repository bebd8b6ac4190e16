package identity

import (
	"errors"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

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
	// ErrNotLinked means the number is not linked to that person.
	ErrNotLinked = errors.New("that number is not linked to you")
	// ErrOwnNumber means a person tried to start a chat with a number they linked themselves.
	ErrOwnNumber = errors.New("that number is linked to your own account")
	// ErrSMSNotOptedIn means only SMS reaches a number and the sender has not said `sms on`.
	ErrSMSNotOptedIn = errors.New("only SMS reaches that number, and SMS is not end-to-end encrypted; say `sms on` first if you want SMS chats")
	// ErrUnreachable means no enabled network reaches a number.
	ErrUnreachable = errors.New("no enabled network reaches that number: it is not linked to a Matrix account, not on WhatsApp, and SMS is not enabled")
	// ErrInvalidNumber means a phone number cannot be read; it is
	// [phone.ErrInvalid], which every phone.Normalize error wraps.
	ErrInvalidNumber = phone.ErrInvalid
	// ErrNoCodeNetwork means no enabled network can deliver a verification code.
	ErrNoCodeNetwork = errors.New("no enabled network can send a code to that number (WhatsApp does not reach it and SMS is not enabled)")
	// ErrNoSecret means the store was used before SetSecret.
	ErrNoSecret = errors.New("identity store has no secret (SetSecret not called)")
	// ErrRateLimited means too many codes were requested recently.
	ErrRateLimited = errors.New("too many codes requested; try again later")
)
