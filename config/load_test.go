package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard"
)

var secretKeys = []string{"appservice.as_token", "appservice.hs_token", "encryption.pickle_key", "identity.secret", "provisioning.shared_secret"}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o640))
	return path
}

func TestLoadOrCreateMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	path := filepath.Join(dir, "config.yaml")

	cfg, created, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.True(t, created)
	require.ElementsMatch(t, secretKeys, cfg.GeneratedKeys())
	require.Empty(t, cfg.AddedKeys())

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, keyPaths(t, switchboard.ExampleConfig), keyPaths(t, data), "the written config is complete")
	require.Contains(t, string(data), "# Token the bridge uses with the homeserver.", "comments are kept")
	for _, key := range secretKeys {
		v := scalarAt(t, data, key)
		require.NotEqual(t, "generate", v, key)
		require.GreaterOrEqual(t, len(v), 43, key)
	}
	require.Len(t, cfg.Appservice.ASToken, 64)
	require.NotEqual(t, cfg.Appservice.ASToken, cfg.Appservice.HSToken)
	require.NotEqual(t, cfg.Encryption.PickleKey, cfg.Identity.Secret)
	require.Equal(t, "http://localhost:8008", cfg.Homeserver.Address)
	require.Equal(t, "localhost", cfg.Homeserver.Domain)
	require.Equal(t, filepath.Join(dir, "switchboard.db"), cfg.Database.URI, "SQLite lives next to the config")
	abs, _ := filepath.Abs(path)
	require.Equal(t, abs, cfg.Path())

	// The next run loads the same file and changes nothing.
	again, created, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Empty(t, again.GeneratedKeys())
	require.Equal(t, cfg.Appservice, again.Appservice)
	require.Equal(t, cfg.Identity, again.Identity)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(data), string(after))
}

// userConfig is a complete config as an admin might have edited it: own
// comments, own values, sections in another order, secrets still
// "generate".
const userConfig = `# My bridge. Do not touch.

logging:
  level: debug # noisy on purpose
  format: json
homeserver:
  # our synapse
  address: https://matrix.example.net # behind the proxy
  domain: example.net
appservice:
  address: http://localhost:29340
  listen: 127.0.0.1:29340
  id: switchboard
  bot_username: switchboard
  bot_displayname: Switchboard
  ghost_prefix: sb_
  # keep these secret
  as_token: generate
  hs_token: generate # from the homeserver admin
  pprof: false
  message_status_events: true
  double_puppet: false
  personal_spaces: true
database:
  type: sqlite
  uri: data/bridge.db
  max_open_conns: 5
  max_idle_conns: 1
encryption:
  allow: true
  default: true
  pickle_key: generate
  appservice: false
  msc4190: false
  bot_password: ""
permissions:
  "@me:example.net": admin
identity:
  secret: generate
sms:
  enabled: false
  public_url: https://bridge.example.org
  twilio:
    account_sid: ACxxxxxxxx
    auth_token: xxxxxxxx
    api_url: https://api.twilio.com
    numbers: ["+15550001111"]
  allowed_countries: [US]
whatsapp:
  enabled: true
  device_name: switchboard
  login_timeout: 3m
  backfill:
    enabled: true
    max_messages_per_chat: 50
    max_conversations: 10
retention:
  default: 30d
  networks:
    matrix: 0
    whatsapp: 0
    sms: 720h
  metadata: 168h
safety:
  new_chats_per_hour: 3
  admin_room: ""
  sender_messages_per_minute: 30
  conversation_messages_per_minute: 60
  inbound_messages_per_minute: 20
  sms_segment_interval: 1s
  sms_number_intervals: {}
  high_cost_prefixes: []
  high_cost_per_hour: 10
  suspend_score: 100
  signal_window: 24h
delivery:
  workers: 4
  max_attempts: 12
  retry_base: 1s
  retry_max: 10m
  lease: 30s
  poll_interval: 1s
provisioning:
  shared_secret: generate
`

func TestLoadOrCreateGeneratesSecrets(t *testing.T) {
	path := writeFile(t, "config.yaml", userConfig)

	cfg, created, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.ElementsMatch(t, secretKeys, cfg.GeneratedKeys())
	require.Empty(t, cfg.AddedKeys())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(data)
	for _, key := range secretKeys {
		require.NotEqual(t, "generate", scalarAt(t, data, key), key)
	}
	require.Equal(t, cfg.Appservice.ASToken, scalarAt(t, data, "appservice.as_token"))
	require.Equal(t, cfg.Identity.Secret, scalarAt(t, data, "identity.secret"))

	// Comments, values and key order are the admin's.
	for _, comment := range []string{
		"# My bridge. Do not touch.", "# noisy on purpose", "# our synapse",
		"# behind the proxy", "# keep these secret", "# from the homeserver admin",
	} {
		require.Contains(t, text, comment)
	}
	require.Equal(t, keyPaths(t, []byte(userConfig)), keyPaths(t, data))
	require.Equal(t, "debug", cfg.Logging.Level)
	require.Equal(t, "https://matrix.example.net", cfg.Homeserver.Address)
	require.Equal(t, map[string]string{"@me:example.net": "admin"}, cfg.Permissions)
	require.Equal(t, filepath.Join(filepath.Dir(path), "data", "bridge.db"), cfg.Database.URI)
	require.Equal(t, "data/bridge.db", scalarAt(t, data, "database.uri"), "the file keeps the relative path")

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm(), "the file keeps its mode")

	// A second load is stable: same secrets, file untouched.
	again, _, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.Empty(t, again.GeneratedKeys())
	require.Equal(t, cfg.Appservice.ASToken, again.Appservice.ASToken)
	require.Equal(t, cfg.Appservice.HSToken, again.Appservice.HSToken)
	require.Equal(t, cfg.Encryption.PickleKey, again.Encryption.PickleKey)
	require.Equal(t, cfg.Identity.Secret, again.Identity.Secret)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, text, string(after))
}

func TestLoadOrCreateEnvSecretsStayOutOfFile(t *testing.T) {
	path := writeFile(t, "config.yaml", userConfig)
	env := envMap(map[string]string{
		"SWITCHBOARD_IDENTITY_SECRET":     "identity-from-env",
		"SWITCHBOARD_APPSERVICE_HS_TOKEN": "hs-from-env-0123456789abcdef0123456789",
	})

	cfg, _, err := LoadOrCreate(path, env)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"appservice.as_token", "encryption.pickle_key", "provisioning.shared_secret"}, cfg.GeneratedKeys())
	require.Equal(t, "identity-from-env", cfg.Identity.Secret)
	require.Equal(t, "hs-from-env-0123456789abcdef0123456789", cfg.Appservice.HSToken)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(data), "from-env")
	require.Equal(t, "generate", scalarAt(t, data, "identity.secret"))
	require.Equal(t, "generate", scalarAt(t, data, "appservice.hs_token"))

	// Without the environment the placeholder is refused, naming the key.
	_, err = Load(path, nil)
	requireKeyError(t, err, "identity.secret", ErrPlaceholder)
}

func TestLoadOrCreateLeavesBrokenFileAlone(t *testing.T) {
	content := strings.Replace(userConfig, "  listen:", "  listn:", 1)
	path := writeFile(t, "config.yaml", content)
	_, _, err := LoadOrCreate(path, nil)
	requireKeyError(t, err, "appservice.listn", ErrUnknownKey)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, content, string(data))
}

// oldConfig predates bot_displayname, delivery and logging.format.
const oldConfig = `# switchboard, set up in the old days
homeserver:
  address: https://matrix.example.net
  domain: example.net
appservice:
  address: http://localhost:29340
  listen: 127.0.0.1:29340
  id: switchboard
  bot_username: operator # the bot's name
  ghost_prefix: sb_
  as_token: as-secret-0123456789abcdef0123456789
  hs_token: hs-secret-0123456789abcdef0123456789
database:
  type: sqlite
  uri: switchboard.db
encryption:
  allow: true
  default: false
  pickle_key: pickle-secret
# only me
permissions:
  "@me:example.net": admin
identity:
  secret: identity-secret-0123456789
retention:
  networks:
    sms: 24h
safety:
  new_chats_per_hour: 2
logging:
  level: warn # quiet please
`

func TestUpgrade(t *testing.T) {
	out, added, err := Upgrade([]byte(oldConfig))
	require.NoError(t, err)
	for _, key := range []string{"appservice.bot_displayname", "delivery", "logging.format", "database.max_open_conns", "sms", "whatsapp", "retention.default", "safety.admin_room"} {
		require.Contains(t, added, key)
	}
	require.NotContains(t, added, "permissions", "the admin's map is not extended")
	text := string(out)

	// The admin's values and comments are kept.
	for _, s := range []string{"# switchboard, set up in the old days", "bot_username: operator # the bot's name", "# only me", "level: warn # quiet please", "sms: 24h"} {
		require.Contains(t, text, s)
	}
	// New keys come with the example's value and comment.
	require.Contains(t, text, "# Display name of the bridge bot. Default: switchboard bridge\n  bot_displayname: switchboard bridge\n")
	require.Contains(t, text, "# The outgoing message queue.\ndelivery:\n")
	// ...in the example's order, next to their neighbours.
	keys := keyPaths(t, out)
	require.Equal(t, slices.Index(keys, "appservice.bot_username")+1, slices.Index(keys, "appservice.bot_displayname"))
	require.Equal(t, slices.Index(keys, "logging.level")+1, slices.Index(keys, "logging.format"))
	require.Less(t, slices.Index(keys, "safety"), slices.Index(keys, "delivery"))
	require.Less(t, slices.Index(keys, "delivery"), slices.Index(keys, "logging"))
	require.Less(t, slices.Index(keys, "retention.default"), slices.Index(keys, "retention.networks"))
	require.NotContains(t, keys, `permissions["*"]`)
	require.Equal(t, "24h", scalarAt(t, out, "retention.networks.sms"))
	require.Equal(t, "0", scalarAt(t, out, "retention.networks.matrix"), "fixed-key maps are completed")
	// A secret the old file lacks comes as "generate", which GenerateSecrets
	// (next in LoadOrCreate) replaces.
	require.Equal(t, PlaceholderGenerate, scalarAt(t, out, "provisioning.shared_secret"))
	generated, _, err := GenerateSecrets(out, nil)
	require.NoError(t, err)

	cfg, err := Parse(generated)
	require.NoError(t, err)
	require.Equal(t, "operator", cfg.Appservice.BotUsername)
	require.Equal(t, "switchboard bridge", cfg.Appservice.BotDisplayname)
	require.Equal(t, Default().Delivery, cfg.Delivery)
	require.Equal(t, map[string]string{"@me:example.net": "admin"}, cfg.Permissions)

	// Upgrading an upgraded file changes nothing.
	again, added, err := Upgrade(out)
	require.NoError(t, err)
	require.Empty(t, added)
	require.Equal(t, text, string(again))
}

func TestLoadOrCreateUpgrades(t *testing.T) {
	path := writeFile(t, "config.yaml", oldConfig)
	cfg, created, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Contains(t, cfg.AddedKeys(), "delivery")
	// A key added with "generate" (provisioning.shared_secret) is generated.
	require.Equal(t, []string{"provisioning.shared_secret"}, cfg.GeneratedKeys())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), "bot_displayname: switchboard bridge")
	require.Contains(t, string(data), "# only me")
}

func TestUpgradeEmptyFile(t *testing.T) {
	path := writeFile(t, "config.yaml", "")
	cfg, created, err := LoadOrCreate(path, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Contains(t, cfg.AddedKeys(), "homeserver")
	require.ElementsMatch(t, secretKeys, cfg.GeneratedKeys())
}

func TestResolveSQLite(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"switchboard.db", "/etc/sb/switchboard.db"},
		{"data/x.db", "/etc/sb/data/x.db"},
		{"/var/lib/sb.db", "/var/lib/sb.db"},
		{":memory:", ":memory:"},
		{"file:sb.db?_pragma=foreign_keys(1)", "file:/etc/sb/sb.db?_pragma=foreign_keys(1)"},
		{"file:/abs.db", "file:/abs.db"},
		{"file::memory:?cache=shared", "file::memory:?cache=shared"},
	} {
		require.Equal(t, tc.want, resolveSQLite(tc.in, "/etc/sb"), tc.in)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}
