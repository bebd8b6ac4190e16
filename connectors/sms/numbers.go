package sms

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// NormalizeNumber parses a phone number written in international form
// ("+1 415 555 0100", "+14155550100", "00…" is not accepted) and returns it
// in E.164 with its ISO 3166 region. Only numbers libphonenumber considers
// valid are accepted. Errors never contain the input.
func NormalizeNumber(s string) (e164, region string, err error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || len(s) > 32 || s[0] != '+' {
		return "", "", fmt.Errorf("%w: must be in international form starting with +", ErrInvalidNumber)
	}
	num, perr := phonenumbers.Parse(s, "")
	if perr != nil {
		return "", "", fmt.Errorf("%w: cannot be parsed", ErrInvalidNumber)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", "", fmt.Errorf("%w: not an assigned number range", ErrInvalidNumber)
	}
	return phonenumbers.Format(num, phonenumbers.E164), phonenumbers.GetRegionCodeForNumber(num), nil
}

// checkCountry refuses regions not in allowed (upper-case ISO codes).
func checkCountry(region string, allowed []string) error {
	if slices.Contains(allowed, strings.ToUpper(region)) {
		return nil
	}
	return &CountryError{Region: region}
}
