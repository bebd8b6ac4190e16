package phone_test

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// legacyNormalize is a copy of identity.NormalizeNumber as it was before
// this package: existing databases hold keyed hashes of its output, so
// Normalize must return the same string for every input it accepts
// (TestNormalizeAgreesWithLegacy, FuzzNormalize). Do not change it.
func legacyNormalize(s string) (string, error) {
	errInvalid := errors.New("not a valid phone number in international form")
	s = strings.TrimSpace(s)
	if len(s) < 2 || len(s) > 32 || s[0] != '+' {
		return "", errInvalid
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", errInvalid
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	again, err := phonenumbers.Parse(e164, "")
	if err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", errInvalid
	}
	return e164, nil
}
