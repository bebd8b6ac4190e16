package identity_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/identity"
)

// goldenSecret and the values below were computed by the code before the
// keyring owned every label (commit 5b21206). Pseudonyms are user IDs
// people see and the database's look-up keys: they must never change.
const goldenSecret = "golden vector secret, never a real one"

func TestGoldenPseudonyms(t *testing.T) {
	p, err := identity.NewPseudonyms([]byte(goldenSecret))
	require.NoError(t, err)
	v, err := identity.NewVault([]byte(goldenSecret))
	require.NoError(t, err)
	for _, tc := range []struct{ number, id, name, lookup string }{
		{"+14155550123", "ph_hzix6yaik6cwq7iubdnizn7i", "Contact hzix6y", "a171961faa59444acbb09e54aaa7924013059f7f59ae8fa4734cd235f868715f"},
		{"+447700900123", "ph_dg5dqma4vsxcl2ekhfehyduf", "Contact dg5dqm", "34147dc4331d55b325ecd342b72aa509e72bbc931020ec9e2d2a30d4b09a87b3"},
		{"+33612345678", "ph_h7e5wjdgxylfq6e5nguqndco", "Contact h7e5wj", "e177573f2324595bc8a3489d2bc7b79d2be8ff97c5e23493424921fc91bd3366"},
	} {
		t.Run(tc.number, func(t *testing.T) {
			require.Equal(t, bridge.Sender{ID: bridge.UserID(tc.id), DisplayName: tc.name}, p.Phone(tc.number))
			require.Equal(t, tc.lookup, v.Lookup(tc.number))
		})
	}
}

func TestGoldenVault(t *testing.T) {
	v, err := identity.NewVault([]byte(goldenSecret))
	require.NoError(t, err)
	// The look-up of a verification code (Verifier.codeHash).
	require.Equal(t, "5164c2c9b78aaed50c0e9bba07684524608703c08f8e4de7eef02089747e76bc",
		v.Lookup("code\x00matrix:@alice:example.org\x00123456"))
	sealed, err := hex.DecodeString("52ebe6dde44a94cd2e2b6f9e33263ffea9477d7a6704cfc484f443cd2956d0a67c1765a42b2e6c05")
	require.NoError(t, err)
	number, err := v.Open(sealed, "ctx")
	require.NoError(t, err)
	require.Equal(t, "+14155550123", number)
}
