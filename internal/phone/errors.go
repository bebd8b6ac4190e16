package phone

import "errors"

// ErrInvalid is wrapped by every error Normalize returns. Those errors'
// texts name the problem only ("the number is too short"), so a caller can
// show them after its own lead-in; none holds the input.
var ErrInvalid = errors.New("invalid phone number")

// invalid is one named problem with a number; it wraps ErrInvalid.
type invalid string

func (e invalid) Error() string { return string(e) }
func (e invalid) Unwrap() error { return ErrInvalid }

var (
	// ErrEmpty means there is no number at all.
	ErrEmpty error = invalid("the number is empty")
	// ErrNotInternational means a number without + (or 00) was given and
	// no region is known to read it in.
	ErrNotInternational error = invalid("a phone number must start with + and the country code")
	// ErrLetters means the input has letters in it.
	ErrLetters error = invalid("the number has letters in it")
	// ErrCharacters means the input has characters that are neither digits
	// nor the separators people write numbers with.
	ErrCharacters error = invalid("the number has characters that are not part of a phone number")
	// ErrPlus means a + somewhere other than at the start.
	ErrPlus error = invalid("a + may only come first, before the country code")
	// ErrTooShort means too few digits for the country.
	ErrTooShort error = invalid("the number is too short")
	// ErrTooLong means too many digits for the country, or an over-long input.
	ErrTooLong error = invalid("the number is too long")
	// ErrCountryCode means the country code is not one in use.
	ErrCountryCode error = invalid("the country code is not one in use")
	// ErrRegion means the region given to read a national number in is unknown.
	ErrRegion error = invalid("the region to read a national number in is unknown")
	// ErrNotPossible means the number cannot exist in its country (wrong
	// length) or has no single international form.
	ErrNotPossible error = invalid("the number is not a possible number for its country")
)
