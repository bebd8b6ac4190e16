package identity_test

import (
	"strings"
	"testing"

	"github.com/switchboard-bridge/switchboard/identity"
)

// FuzzNormalizeNumber: any input gives E.164 or ErrInvalidNumber, never a
// panic; the result normalises to itself; errors never echo the input.
func FuzzNormalizeNumber(f *testing.F) {
	for _, s := range []string{"+14155550123", "+1 415 555 0123", "+15551234567", "+1555", "", "+", "00441234", "+44 20 7946 0958", "+٤١٥"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := identity.NormalizeNumber(s)
		if err != nil {
			if len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if !strings.HasPrefix(got, "+") || strings.ContainsAny(got, " -()") {
			t.Fatalf("%q is not E.164", got)
		}
		again, err := identity.NormalizeNumber(got)
		if err != nil || again != got {
			t.Fatalf("%q does not normalise to itself: %q, %v", got, again, err)
		}
		if m := identity.Mask(got); !strings.HasSuffix(got, strings.TrimPrefix(m, "…")) || len(m) > len("…")+4 {
			t.Fatalf("mask %q is not the last four digits of %q", m, got)
		}
	})
}
