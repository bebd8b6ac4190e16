package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A config from before personal spaces gets appservice.personal_spaces
// (on, the default) added by the upgrade; an admin's false is kept.
func TestUpgradeAddsPersonalSpaces(t *testing.T) {
	old := `homeserver:
  address: https://matrix.example.net
  domain: example.net
appservice:
  as_token: as-secret-0123456789abcdef0123456789
  hs_token: hs-secret-0123456789abcdef0123456789
identity:
  secret: identity-secret-0123456789
`
	out, added, err := Upgrade([]byte(old))
	require.NoError(t, err)
	require.Contains(t, added, "appservice.personal_spaces")
	require.Equal(t, "true", scalarAt(t, out, "appservice.personal_spaces"))
	generated, _, err := GenerateSecrets(out, nil)
	require.NoError(t, err)
	cfg, err := Parse(generated)
	require.NoError(t, err)
	require.True(t, cfg.Appservice.PersonalSpaces)

	off, _, err := Upgrade([]byte(old[:len(old)-len("identity:\n  secret: identity-secret-0123456789\n")] + "  personal_spaces: false\n"))
	require.NoError(t, err)
	require.Equal(t, "false", scalarAt(t, off, "appservice.personal_spaces"))
	require.True(t, Default().Appservice.PersonalSpaces)
}
