package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// provisioning.shared_secret: long random values run, "-" and an absent
// key turn the shared-secret access off, placeholders and short or reused
// secrets are refused naming the key (never the value).
func TestProvisioningSecret(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		enabled     bool
		sentinel    error
	}{
		{"random", strings.Repeat("k", 40), true, nil},
		{"disabled", `"-"`, false, nil},
		{"placeholder", "generate", false, ErrPlaceholder},
		{"short", "short-secret", false, ErrInvalidValue},
		{"as_token reused", "as-secret-0123456789abcdef0123456789", false, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(set(t, minimalYAML, "provisioning.shared_secret", tc.value)))
			if tc.sentinel != nil {
				requireKeyError(t, err, "provisioning.shared_secret", tc.sentinel)
				if tc.sentinel != ErrPlaceholder {
					require.NotContains(t, err.Error(), tc.value, "the secret is not echoed")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.enabled, cfg.Provisioning.SecretEnabled())
		})
	}
	cfg, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	require.False(t, cfg.Provisioning.SecretEnabled(), "absent: off")
}

// An older config without the provisioning section gets one, with a
// generated secret of 64 characters, on load.
func TestProvisioningSecretAddedOnUpgrade(t *testing.T) {
	path := writeFile(t, "config.yaml", minimalYAML)
	cfg, _, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.Contains(t, cfg.AddedKeys(), "provisioning")
	require.Contains(t, cfg.GeneratedKeys(), "provisioning.shared_secret")
	require.Len(t, cfg.Provisioning.SharedSecret, 64)
	require.True(t, cfg.Provisioning.SecretEnabled())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), "shared_secret: "+cfg.Provisioning.SharedSecret)
}
