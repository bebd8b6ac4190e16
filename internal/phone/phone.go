// Package phone owns phone numbers: the one canonical form every keyed
// hash is taken of (identity links, pseudonyms, SMS and WhatsApp chat
// keys), reading the ways people write and paste numbers into it
// (Normalize), the region a number belongs to (Region), how a number is
// shown to its owner (Mask), and finding and hiding numbers in free text
// (Contains, Redact).
//
// # Validity rule
//
// Normalize accepts a number when libphonenumber (nyaruka/phonenumbers)
// considers it possible — its country code is in use and its length fits
// the country (possible-local-only lengths included) — and its E.164 form
// parses back to itself. It does not require the number to lie in a range
// the metadata lists as assigned ("valid"): metadata lags behind new
// ranges, and a network that cannot serve a number says so when it is
// used. This is the rule identity applied before this package existed, so
// every E.164 string stored or hashed until then is unchanged.
package phone

import (
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// maxInput bounds the input read, in bytes; longer input is refused as too
// long before any parsing. Invisible characters and separators count.
const maxInput = 256

// maxDigits bounds the digits a number may have: E.164 allows 15; a few
// more leave room for a national prefix written after the country code.
const maxDigits = 17

// Normalize reads a phone number as people write and paste it (spaces,
// dashes, dots, slashes, parentheses, NBSP, a leading 00, fullwidth and
// other Unicode digits, invisible/format characters) and returns its
// canonical E.164 form. A national number without + or 00 is read in
// region (ISO 3166, e.g. "US") when region is not "", else it is refused
// with an error asking for the international form. Every error wraps
// [ErrInvalid], names the problem and never holds the input.
func Normalize(s, region string) (string, error) {
	if len(s) > maxInput {
		return "", ErrTooLong
	}
	clean, digits, plus, err := clean(s)
	if err != nil {
		return "", err
	}
	switch {
	case digits == "":
		if clean == "" {
			return "", ErrEmpty
		}
		return "", ErrTooShort
	case len(digits) > maxDigits+2:
		return "", ErrTooLong
	}
	text, from := clean, ""
	switch {
	case plus:
	case strings.HasPrefix(digits, "00"):
		// The international prefix most of the world dials: 00 then the
		// country code.
		text = "+" + digits[2:]
	case region == "":
		return "", ErrNotInternational
	default:
		if !knownRegion(region) {
			return "", ErrRegion
		}
		from = strings.ToUpper(region)
	}
	num, perr := phonenumbers.Parse(text, from)
	if perr != nil {
		if len(digits) <= 3 {
			return "", ErrTooShort
		}
		return "", parseError(perr)
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE, phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
	case phonenumbers.TOO_SHORT:
		return "", ErrTooShort
	case phonenumbers.TOO_LONG:
		return "", ErrTooLong
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", ErrCountryCode
	default:
		return "", ErrNotPossible
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// Only numbers whose E.164 form reads back as itself: links, routes
	// and chats are found by a keyed hash of it.
	again, perr := phonenumbers.Parse(e164, "")
	if perr != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", ErrNotPossible
	}
	return e164, nil
}

// clean drops invisible (format) characters, folds fullwidth forms and
// Unicode digits to ASCII and every kind of space or dash to one, and
// refuses anything else that is not a digit, a separator or a + before the
// digits.
// It returns the cleaned text, its digits, and whether it starts with +.
func clean(s string) (text, digits string, plus bool, err error) {
	var b, d strings.Builder
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E { // fullwidth ASCII forms
			r -= 0xFEE0
		}
		switch {
		case unicode.Is(unicode.Cf, r):
			continue // U+200E, U+202A-E, U+2066-9, U+FEFF, zero-width spaces…
		case r >= '0' && r <= '9':
		case unicode.IsDigit(r):
			r = '0' + digitValue(r)
		case unicode.IsSpace(r) || r == '\u200b':
			r = ' '
		case strings.ContainsRune("-./()", r):
		case strings.ContainsRune("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", r):
			r = '-'
		case r == '+':
			// Any number of them before the first digit is one (libphonenumber
			// reads "++1…" as "+1…", and so did identity).
			if d.Len() > 0 {
				return "", "", false, ErrPlus
			}
			plus = true
		case unicode.IsLetter(r):
			return "", "", false, ErrLetters
		default:
			return "", "", false, ErrCharacters
		}
		if r >= '0' && r <= '9' {
			d.WriteRune(r)
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String()), d.String(), plus, nil
}

// digitValue is the value of a Unicode decimal digit: decimal digits come
// in runs of ten (or of several tens) from zero up.
func digitValue(r rune) rune {
	for _, rg := range unicode.Nd.R16 {
		if lo, hi := rune(rg.Lo), rune(rg.Hi); r >= lo && r <= hi {
			return (r - lo) % 10
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if lo, hi := rune(rg.Lo), rune(rg.Hi); r >= lo && r <= hi {
			return (r - lo) % 10
		}
	}
	return 0
}

// knownRegion reports whether libphonenumber has metadata for region.
func knownRegion(region string) bool {
	return phonenumbers.GetSupportedRegions()[strings.ToUpper(region)]
}

// parseError turns a libphonenumber parse error into one naming the
// problem (its own texts are fine, but the API promises these).
func parseError(err error) error {
	switch err {
	case phonenumbers.ErrInvalidCountryCode:
		return ErrCountryCode
	case phonenumbers.ErrTooShortNSN, phonenumbers.ErrTooShortAfterIDD:
		return ErrTooShort
	case phonenumbers.ErrNumTooLong:
		return ErrTooLong
	default:
		return ErrNotPossible
	}
}

// Region returns the ISO 3166 region of an E.164 number ("US", "GB"), or
// "" when the number is not one or belongs to no single region (a number
// outside every assigned range, a non-geographic number).
func Region(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	if r := phonenumbers.GetRegionCodeForNumber(num); r != phonenumbers.UNKNOWN_REGION && r != "001" {
		return r
	}
	return ""
}

// Mask shows a number to its owner without its digits: "…0123".
func Mask(e164 string) string {
	if len(e164) <= 4 {
		return "…"
	}
	return "…" + e164[len(e164)-4:]
}
