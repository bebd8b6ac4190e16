package sms

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// readNumber reads a phone number with [phone.Normalize] (international
// form; no region is assumed) and returns it in E.164 with its ISO 3166
// region ("" if it lies in no country's assigned ranges). The error wraps
// both ErrInvalidNumber and phone.ErrInvalid, and never holds the input.
func readNumber(s string) (e164, region string, err error) {
	e164, err = phone.Normalize(s, "")
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	return e164, phone.Region(e164), nil
}

// checkCountry refuses regions not in allowed (upper-case ISO codes), and
// numbers in no country at all (ErrUnassignedNumber): SMS's toll-fraud
// guard cannot allow what it cannot place.
func checkCountry(region string, allowed []string) error {
	if region == "" {
		return ErrUnassignedNumber
	}
	if slices.Contains(allowed, strings.ToUpper(region)) {
		return nil
	}
	return &CountryError{Region: region}
}
