package phone

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error Normalize returns. The errors below
// name the problem; none of them holds the input.
var ErrInvalid = errors.New("invalid phone number")

var (
	// ErrEmpty means there is no number at all.
	ErrEmpty = fmt.Errorf("%w: it is empty", ErrInvalid)
	// ErrNotInternational means a number without + (or 00) was given and
	// no region is known to read it in.
	ErrNotInternational = fmt.Errorf("%w: a phone number must start with + and the country code", ErrInvalid)
	// ErrLetters means the input has letters in it.
	ErrLetters = fmt.Errorf("%w: it has letters in it", ErrInvalid)
	// ErrCharacters means the input has characters that are neither digits
	// nor the separators people write numbers with.
	ErrCharacters = fmt.Errorf("%w: it has characters that are not part of a phone number", ErrInvalid)
	// ErrPlus means a + somewhere other than at the start.
	ErrPlus = fmt.Errorf("%w: a + may only come first, before the country code", ErrInvalid)
	// ErrTooShort means too few digits for the country.
	ErrTooShort = fmt.Errorf("%w: it is too short", ErrInvalid)
	// ErrTooLong means too many digits for the country, or an over-long input.
	ErrTooLong = fmt.Errorf("%w: it is too long", ErrInvalid)
	// ErrCountryCode means the country code is not one in use.
	ErrCountryCode = fmt.Errorf("%w: its country code is not one in use", ErrInvalid)
	// ErrRegion means the region given to read a national number in is unknown.
	ErrRegion = fmt.Errorf("%w: the region to read it in is unknown", ErrInvalid)
	// ErrNotPossible means the number cannot exist in its country (wrong
	// length) or has no single international form.
	ErrNotPossible = fmt.Errorf("%w: it is not a possible number for its country", ErrInvalid)
)
