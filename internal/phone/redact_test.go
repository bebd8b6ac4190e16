package phone_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// Moved from connectors/matrix (TestContainsPhoneNumber), same assertions,
// plus the characters Normalize reads past.
func TestContains(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"+15551234567", true},
		{"+1 (555) 123-4567", true},
		{"555.123.4567", true},
		{"Call me at 030 1234567 please", true},
		{"Alice", false},
		{"Agent 007", false},
		{"Room 12345", false},
		{"", false},
		{"Contact k3f9", false},
		{"12-34-56", false},
		{"＋１ ２０２ ５５５ ０１４３", true},
		{"202\u200b555\u200b0143", true},
		{"\u202a+1 202-555-0143\u202c", true},
		{"+1\u00a0202\u00a0555\u00a00143", true},
		{"202－555－0143", true},
		{"Flat 12, 3 rooms", false},
	} {
		assert.Equal(t, tc.want, phone.Contains(tc.in), "%q", tc.in)
	}
}

// Moved from connectors/matrix (TestRedactPhoneNumbers), same assertions.
func TestRedact(t *testing.T) {
	assert.Equal(t, "The number [number] is not valid", phone.Redact("The number +15551234567 is not valid"))
	assert.Equal(t, "call [number] now", phone.Redact("call +1 (555) 123-4567 now"))
	assert.Equal(t, "nothing here 123", phone.Redact("nothing here 123"))
	assert.Equal(t, "call [number] now", phone.Redact("call ＋１ ２０２ ５５５ ０１４３ now"))
	assert.Equal(t, "a [number] b [number]", phone.Redact("a 202 555 0143 b +44 20 7946 0958"))
}

// Moved from connectors/matrix (FuzzRedactPhoneNumbers): what Redact
// returns holds no number, and every number Normalize reads is seen by
// Contains when it has seven digits or more.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"+15551234567", "a 555 123 4567 b", "x", "٠١٢٣٤٥٦٧٨", "＋１２０２５５５０１４３", "202\u200b555\u200b0143"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if out := phone.Redact(s); phone.Contains(out) {
			t.Fatalf("Redact(%q) = %q still holds a number", s, out)
		}
		if e164, err := phone.Normalize(s, ""); err == nil && len(e164) > minRun && !phone.Contains(s) {
			t.Fatalf("Contains(%q) is false but it reads as %s", s, e164)
		}
	})
}

// minRun is "+" and the seven digits that make a run.
const minRun = 7
