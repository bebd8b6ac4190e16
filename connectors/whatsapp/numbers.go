package whatsapp

import (
	"fmt"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// readNumber replaces *number with its canonical E.164 form
// ([phone.Normalize], no region assumed), the form every keyed hash of a
// number is taken of. The error wraps ErrInvalidNumber and names the
// problem, never the number.
func readNumber(number *string) error {
	e164, err := phone.Normalize(*number, "")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	*number = e164
	return nil
}
