package phone_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// TestNormalizeWrittenForms: the ways people write and paste one number
// all reach the same E.164 form.
func TestNormalizeWrittenForms(t *testing.T) {
	for _, tc := range []struct {
		in, region, want string
	}{
		{"+12025550143", "", "+12025550143"},
		{"+1 (202) 555-0143", "", "+12025550143"},
		{"+1.202.555.0143", "", "+12025550143"},
		{"+1/202/555/0143", "", "+12025550143"},
		{"++1 202 555 0143", "", "+12025550143"},
		{"+1-202-555-0143", "", "+12025550143"},
		{"  +1 202 555 0143\n", "", "+12025550143"},
		{"001 202 555 0143", "", "+12025550143"},
		{"0012025550143", "", "+12025550143"},
		{"00 1 202 555 0143", "GB", "+12025550143"},
		{"＋１２０２５５５０１４３", "", "+12025550143"},
		{"＋１ ２０２ ５５５ ０１４３", "", "+12025550143"},
		{"＋１（２０２）５５５－０１４３", "", "+12025550143"},
		{"\u202a+1 202-555-0143\u202c", "", "+12025550143"},
		{"\u200e+1 202 555 0143", "", "+12025550143"},
		{"\u2066+1 202 555 0143\u2069", "", "+12025550143"},
		{"\ufeff+12025550143", "", "+12025550143"},
		{"+1\u200b202\u200b555\u200b0143", "", "+12025550143"},
		{"+1\u00a0202\u00a0555\u00a00143", "", "+12025550143"},
		{"+1 202 555\u20130143", "", "+12025550143"},
		{"+١٢٠٢٥٥٥٠١٤٣", "", "+12025550143"},
		{"(202) 555-0143", "US", "+12025550143"},
		{"202-555-0143", "us", "+12025550143"},
		{"1 202 555 0143", "US", "+12025550143"},
		{"+44 20 7946 0958", "", "+442079460958"},
		{"+44 (0)20 7946 0958", "", "+442079460958"},
		{"0044 20 7946 0958", "", "+442079460958"},
		{"020 7946 0958", "GB", "+442079460958"},
		{"+49 30 1234567", "", "+49301234567"},
		{"030 1234567", "DE", "+49301234567"},
		{"+15551234567", "", "+15551234567"}, // possible, though not an assigned range
	} {
		got, err := phone.Normalize(tc.in, tc.region)
		require.NoError(t, err, "%q in %q", tc.in, tc.region)
		assert.Equal(t, tc.want, got, "%q in %q", tc.in, tc.region)
		again, err := phone.Normalize(got, "")
		require.NoError(t, err)
		assert.Equal(t, got, again, "canonical")
	}
}

// TestNormalizeRefused: malformed numbers get an error naming the
// problem, wrapping ErrInvalid, and never holding the input.
func TestNormalizeRefused(t *testing.T) {
	for _, tc := range []struct {
		in, region string
		want       error
		says       string
	}{
		{"", "", phone.ErrEmpty, "is empty"},
		{"  \u200e ", "", phone.ErrEmpty, "empty"},
		{"(202) 555-0143", "", phone.ErrNotInternational, "must start with + and the country code"},
		{"2025550143", "", phone.ErrNotInternational, "must start with + and the country code"},
		{"+1 800 FLOWERS", "", phone.ErrLetters, "letters"},
		{"call +12025550143", "", phone.ErrLetters, "letters"},
		{"+12025550143 ext 5", "", phone.ErrLetters, "letters"},
		{"+1 202 555 0143 #", "", phone.ErrCharacters, "characters that are not part of a phone number"},
		{"+1 202 555 0143; +1 202 555 0144", "", phone.ErrCharacters, "characters that are not part of a phone number"},
		{"+1 +202 555 0143", "", phone.ErrPlus, "+ may only come first"},
		{"12+02", "US", phone.ErrPlus, "+ may only come first"},
		{"+", "", phone.ErrTooShort, "too short"},
		{"+1", "", phone.ErrTooShort, "too short"},
		{"+1555", "", phone.ErrTooShort, "too short"},
		{"+1415555010012345", "", phone.ErrTooLong, "too long"},
		{"+1 " + strings.Repeat("2", 40), "", phone.ErrTooLong, "too long"},
		{strings.Repeat(" ", 300) + "+12025550143", "", phone.ErrTooLong, "too long"},
		{"+999 1234 5678", "", phone.ErrCountryCode, "country code"},
		{"+0 202 555 0143", "", phone.ErrCountryCode, "country code"},
		{"202 555 0143", "XX", phone.ErrRegion, "region"},
		{"+44 20", "", phone.ErrTooShort, "too short"},
	} {
		_, err := phone.Normalize(tc.in, tc.region)
		require.ErrorIs(t, err, tc.want, "%q", tc.in)
		require.ErrorIs(t, err, phone.ErrInvalid, "%q", tc.in)
		assert.Contains(t, err.Error(), tc.says, "%q", tc.in)
		if in := strings.TrimSpace(tc.in); len(in) > 3 {
			assert.NotContains(t, err.Error(), in)
		}
	}
}

// TestNormalizeAgreesWithLegacy: for numbers today's identity rule
// accepted, Normalize returns the identical string (existing databases
// hold keyed hashes of it).
func TestNormalizeAgreesWithLegacy(t *testing.T) {
	for _, in := range []string{
		"+14155550123", "+1 415 555 0123", "+15551234567", "+1 (555) 123-4567", " +1.415.555.0123 ",
		"+44 20 7946 0958", "+44 (0) 20 7946 0958", "+442079460123", "+49 30 1234567", "+4930123456789",
		"+33 1 23 45 67 89", "+33 01 23 45 67 89", "+39 06 1234 5678", "+61 2 9876 5432", "+61 02 9876 5432",
		"+81 3-1234-5678", "+86 10 1234 5678", "+91 98765 43210", "+55 11 91234-5678", "+7 495 123-45-67",
		"+380 44 123 4567", "+971 50 123 4567", "+27 21 123 4567", "+234 803 123 4567",
		"+800 1234 5678", "+882 1234 5678", "+683 4002", "+290 8123", "+1 242 555 0143", "+1 868 555 0143",
		"+٤٤٢٠٧٩٤٦٠٩٥٨", "+1 415 555 0123 ", "+12025550143", "+16135550123", "+3545551234",
	} {
		want, err := legacyNormalize(in)
		require.NoError(t, err, "legacy accepts %q", in)
		got, err := phone.Normalize(in, "")
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
}

func TestRegion(t *testing.T) {
	for in, want := range map[string]string{
		"+12025550143": "US", "+16135550123": "CA", "+442079460958": "GB", "+49301234567": "DE",
		"+15551234567": "", "+80012345678": "", "": "", "nonsense": "",
	} {
		assert.Equal(t, want, phone.Region(in), in)
	}
}

func TestMask(t *testing.T) {
	assert.Equal(t, "…0143", phone.Mask("+12025550143"))
	assert.Equal(t, "…", phone.Mask("+123"))
	assert.Equal(t, "…", phone.Mask(""))
}

// FuzzNormalize: any input gives E.164 or an ErrInvalid that does not
// echo it; the output normalises to itself; and where today's identity
// rule accepts the input and it has nothing Normalize refuses (letters,
// other symbols), both return the identical string.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+14155550123", "+1 415 555 0123", "+15551234567", "+1555", "", "+", "00441234", "+44 20 7946 0958", "+٤١٥",
		"+1 (202) 555-0143", "001 202 555 0143", "＋１２０２５５５０１４３", "\u202a+1 202-555-0143\u202c", "+44 (0)20 7946 0958",
		"+1 800 FLOWERS", "+12025550143 ext 5", "+683 4002", "+0", "++1",
	} {
		f.Add(s, "")
	}
	f.Add("(202) 555-0143", "US")
	f.Add("020 7946 0958", "GB")
	f.Fuzz(func(t *testing.T, s, region string) {
		got, err := phone.Normalize(s, region)
		if legacy, lerr := legacyNormalize(s); lerr == nil && region == "" && readable(s) {
			if err != nil || got != legacy {
				t.Fatalf("Normalize(%q) = %q, %v; the identity rule gave %q", s, got, err, legacy)
			}
		}
		if err != nil {
			if !errors.Is(err, phone.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if in := strings.TrimSpace(s); len(in) > 3 && strings.Contains(err.Error(), in) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if !strings.HasPrefix(got, "+") || strings.Trim(got[1:], "0123456789") != "" {
			t.Fatalf("%q is not E.164", got)
		}
		again, err := phone.Normalize(got, "")
		if err != nil || again != got {
			t.Fatalf("%q does not normalise to itself: %q, %v", got, again, err)
		}
		if again, err := phone.Normalize(got, region); err != nil || again != got {
			t.Fatalf("%q in %q does not normalise to itself: %q, %v", got, region, again, err)
		}
		if m := phone.Mask(got); !strings.HasSuffix(got, strings.TrimPrefix(m, "…")) || len(m) > len("…")+4 {
			t.Fatalf("mask %q is not the last four digits of %q", m, got)
		}
	})
}

// readable reports whether s has only what Normalize reads: digits,
// separators, a + and invisible characters (no letters or other symbols).
func readable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsLetter(r) || !(unicode.IsDigit(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) ||
			strings.ContainsRune("+-./()\u200b", r))
	}) < 0
}
