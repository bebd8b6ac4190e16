package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// TestCheckE164: pool numbers are read by internal/phone, must be written
// in its canonical E.164 form, and must lie in a country's assigned ranges;
// the error names the problem.
func TestCheckE164(t *testing.T) {
	require.NoError(t, checkE164("+14155550100"))
	require.NoError(t, checkE164("+442079460123"))
	for in, says := range map[string]string{
		"+1 415 555 0100":    "must be written as +14155550100",
		"+1\u200b4155550100": "must be written as +14155550100",
		"0014155550100":      "must be written as +14155550100",
		"14155550100":        "must start with + and the country code",
		"+1 800 FLOWERS":     "letters",
		"+999":               "too short",
		"+15550001111":       "no country's assigned number ranges",
	} {
		err := checkE164(in)
		require.ErrorIs(t, err, ErrInvalidPhoneNumber, "%q", in)
		require.ErrorContains(t, err, says, "%q", in)
	}
	require.ErrorIs(t, checkE164("+1 800 FLOWERS"), phone.ErrInvalid)
}
