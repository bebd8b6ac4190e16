package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/appservice"
)

// TestEncryptionRegistrationFlags: encryption.appservice and
// encryption.msc4190 turn on the registration flags a homeserver reads
// (written by -g as these exact YAML keys), and come back from the file.
func TestEncryptionRegistrationFlags(t *testing.T) {
	for _, tc := range []struct {
		name                string
		pairs               []string
		msc3202, msc4190    bool
		appservice, devices bool
	}{
		{name: "defaults"},
		{name: "appservice", pairs: []string{"encryption.appservice", "true"}, msc3202: true, appservice: true},
		// MSC4190 devices are used through MSC3202's device masquerading.
		{name: "msc4190", pairs: []string{"encryption.msc4190", "true"}, msc3202: true, msc4190: true, devices: true},
		{name: "both", pairs: []string{"encryption.appservice", "true", "encryption.msc4190", "true"}, msc3202: true, msc4190: true, appservice: true, devices: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(set(t, minimalYAML, tc.pairs...)))
			require.NoError(t, err)
			require.Equal(t, tc.appservice, cfg.Encryption.Appservice)
			require.Equal(t, tc.devices, cfg.Encryption.MSC4190)

			path := filepath.Join(t.TempDir(), "registration.yaml")
			require.NoError(t, WriteRegistration(cfg, path))
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			text := string(data)
			// Ephemeral events are always asked for, under both names.
			require.Contains(t, text, "receive_ephemeral: true\n")
			require.Contains(t, text, "de.sorunome.msc2409.push_ephemeral: true\n")
			require.Equal(t, tc.msc3202, strings.Contains(text, "org.matrix.msc3202: true\n"), text)
			require.Equal(t, tc.msc4190, strings.Contains(text, "io.element.msc4190: true\n"), text)

			reg, err := appservice.LoadRegistration(path)
			require.NoError(t, err)
			require.Equal(t, cfg.Registration(), reg)
			require.Equal(t, tc.msc3202, reg.MSC3202)
			require.Equal(t, tc.msc4190, reg.MSC4190)
		})
	}
}

// TestEncryptionFlagsNeedAllow: without encryption the flags mean nothing:
// the registration asks for neither (the bot has no device), and a value
// that is not a boolean is refused, naming the key.
func TestEncryptionFlagsNeedAllow(t *testing.T) {
	cfg, err := Parse([]byte(set(t, minimalYAML, "encryption.allow", "false", "encryption.appservice", "true", "encryption.msc4190", "true")))
	require.NoError(t, err)
	reg := cfg.Registration()
	require.False(t, reg.MSC3202)
	require.False(t, reg.MSC4190)
	require.True(t, reg.EphemeralEvents, "typing and receipts are asked for anyway")
	_, err = Parse([]byte(set(t, minimalYAML, "encryption.appservice", "maybe")))
	require.ErrorContains(t, err, "encryption.appservice")
}

// TestUpgradeAddsEncryptionFlags: a config from before the flags gets both,
// off, after pickle_key, with the admin's values and comments kept.
func TestUpgradeAddsEncryptionFlags(t *testing.T) {
	old := `homeserver:
  address: https://matrix.example.net
  domain: example.net
appservice:
  as_token: as-secret-0123456789abcdef0123456789
  hs_token: hs-secret-0123456789abcdef0123456789
encryption:
  allow: true
  default: true # everything encrypted
  pickle_key: my-pickle-key
identity:
  secret: identity-secret-0123456789
`
	out, added, err := Upgrade([]byte(old))
	require.NoError(t, err)
	require.Contains(t, added, "encryption.appservice")
	require.Contains(t, added, "encryption.msc4190")
	require.Contains(t, string(out), "default: true # everything encrypted")
	require.Equal(t, "my-pickle-key", scalarAt(t, out, "encryption.pickle_key"))
	require.Equal(t, "false", scalarAt(t, out, "encryption.appservice"))
	require.Equal(t, "false", scalarAt(t, out, "encryption.msc4190"))
	keys := keyPaths(t, out)
	require.Less(t, indexOf(keys, "encryption.pickle_key"), indexOf(keys, "encryption.appservice"))
	require.Less(t, indexOf(keys, "encryption.appservice"), indexOf(keys, "identity"))

	generated, _, err := GenerateSecrets(out, nil)
	require.NoError(t, err)
	cfg, err := Parse(generated)
	require.NoError(t, err)
	require.True(t, cfg.Encryption.Default)
	require.False(t, cfg.Encryption.Appservice)
	require.False(t, cfg.Encryption.MSC4190)

	again, added, err := Upgrade(out)
	require.NoError(t, err)
	require.Empty(t, added)
	require.Equal(t, string(out), string(again))
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}

// TestBotPassword: the bot's password for a homeserver's cross-signing
// step is optional, taken from the file or the environment, and the
// generate placeholder is refused naming the key (nothing generates it: it
// must match what the homeserver's admin set).
func TestBotPassword(t *testing.T) {
	cfg, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	require.Empty(t, cfg.Encryption.BotPassword)

	cfg, err = Parse([]byte(set(t, minimalYAML, "encryption.bot_password", "s3cret-bot")))
	require.NoError(t, err)
	require.Equal(t, "s3cret-bot", cfg.Encryption.BotPassword)

	_, err = Parse([]byte(set(t, minimalYAML, "encryption.bot_password", "generate")))
	require.ErrorContains(t, err, "encryption.bot_password")

	cfg, err = Load(writeFile(t, "config.yaml", minimalYAML), func(name string) (string, bool) {
		if name == "SWITCHBOARD_ENCRYPTION_BOT_PASSWORD" {
			return "from-env", true
		}
		return "", false
	})
	require.NoError(t, err)
	require.Equal(t, "from-env", cfg.Encryption.BotPassword)
}
