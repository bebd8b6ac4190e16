package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-bridge/switchboard"
)

// fullYAML sets every key to a value different from its default.
const fullYAML = `
homeserver:
  address: https://matrix.example.net
  domain: example.net
appservice:
  address: http://bridge.internal:8080
  listen: 0.0.0.0:8080
  id: sb-test
  bot_username: sbbot
  bot_displayname: SB Bot
  ghost_prefix: ghost_
  as_token: as-secret-0123456789abcdef0123456789
  hs_token: hs-secret-0123456789abcdef0123456789
  pprof: true
  message_status_events: false
  double_puppet: true
  personal_spaces: false
database:
  type: postgres
  uri: postgres://sb:pw@db/sb?sslmode=disable
  max_open_conns: 7
  max_idle_conns: 3
encryption:
  allow: false
  default: true
  pickle_key: pickle-secret
  appservice: true
  msc4190: true
  bot_password: bot-password
permissions:
  "*": user
  example.net: admin
  "@alice:example.org": admin
identity:
  secret: identity-secret-0123456789
sms:
  enabled: true
  public_url: https://sms.bridge.example.net
  twilio:
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token: 0123456789abcdef0123456789abcdef
    api_url: http://127.0.0.1:9999
    numbers: ["+14155550100", "+442071838750"]
  allowed_countries: [GB, de]
whatsapp:
  enabled: true
  device_name: My Bridge
  login_timeout: 90s
  backfill: {enabled: false, max_messages_per_chat: 20, max_conversations: 0}
retention:
  default: 30d
  networks: {matrix: 1h, whatsapp: 7d, sms: 24h}
  metadata: 48h
safety:
  new_chats_per_hour: 5
  admin_room: "!admins:example.net"
  sender_messages_per_minute: 7
  conversation_messages_per_minute: 8
  inbound_messages_per_minute: 9
  sms_segment_interval: 333ms
  sms_number_intervals: {"+14155550100": 10ms}
  high_cost_prefixes: ["+882", "+44"]
  high_cost_per_hour: 2
  suspend_score: 50
  signal_window: 6h
delivery:
  workers: 2
  max_attempts: 3
  retry_base: 2s
  retry_max: 1m
  lease: 45s
  poll_interval: 250ms
provisioning:
  shared_secret: provisioning-secret-0123456789abcdef
logging:
  level: debug
  format: json
`

func TestParseFull(t *testing.T) {
	cfg, err := Parse([]byte(fullYAML))
	require.NoError(t, err)

	want := &Config{
		Homeserver: Homeserver{Address: "https://matrix.example.net", Domain: "example.net"},
		Appservice: Appservice{
			Address: "http://bridge.internal:8080", Listen: "0.0.0.0:8080", ID: "sb-test",
			BotUsername: "sbbot", BotDisplayname: "SB Bot", GhostPrefix: "ghost_",
			ASToken: "as-secret-0123456789abcdef0123456789", HSToken: "hs-secret-0123456789abcdef0123456789",
			Pprof: true, MessageStatusEvents: false, DoublePuppet: true,
		},
		Database: Database{
			Type: "postgres", URI: "postgres://sb:pw@db/sb?sslmode=disable",
			MaxOpenConns: 7, MaxIdleConns: 3,
		},
		Encryption: Encryption{Allow: false, Default: true, PickleKey: "pickle-secret", Appservice: true, MSC4190: true, BotPassword: "bot-password"},
		Permissions: map[string]string{
			"*": "user", "example.net": "admin", "@alice:example.org": "admin",
		},
		Identity: Identity{Secret: "identity-secret-0123456789"},
		SMS: SMS{
			Enabled:   true,
			PublicURL: "https://sms.bridge.example.net",
			Twilio: Twilio{
				AccountSID: "AC0123456789abcdef0123456789abcdef",
				AuthToken:  "0123456789abcdef0123456789abcdef",
				APIURL:     "http://127.0.0.1:9999",
				Numbers:    []string{"+14155550100", "+442071838750"},
			},
			AllowedCountries: []string{"GB", "DE"},
		},
		WhatsApp: WhatsApp{Enabled: true, DeviceName: "My Bridge", LoginTimeout: Duration(90 * time.Second),
			Backfill: WhatsAppBackfill{Enabled: false, MaxMessagesPerChat: 20, MaxConversations: 0}},
		Retention: Retention{
			Default: Duration(30 * 24 * time.Hour),
			Networks: map[string]Duration{
				"matrix": Duration(time.Hour), "whatsapp": Duration(7 * 24 * time.Hour), "sms": Duration(24 * time.Hour),
			},
			Metadata: Duration(48 * time.Hour),
		},
		Safety: Safety{
			NewChatsPerHour: 5, AdminRoom: "!admins:example.net",
			SenderPerMinute: 7, ConversationPerMinute: 8, InboundPerMinute: 9,
			SMSSegmentInterval: Duration(333 * time.Millisecond),
			SMSNumberIntervals: map[string]Duration{"+14155550100": Duration(10 * time.Millisecond)},
			HighCostPrefixes:   []string{"+882", "+44"}, HighCostPerHour: 2,
			SuspendScore: 50, SignalWindow: Duration(6 * time.Hour),
		},
		Delivery: Delivery{
			Workers: 2, MaxAttempts: 3,
			RetryBase: Duration(2 * time.Second), RetryMax: Duration(time.Minute),
			Lease: Duration(45 * time.Second), PollInterval: Duration(250 * time.Millisecond),
		},
		Provisioning: Provisioning{SharedSecret: "provisioning-secret-0123456789abcdef"},
		Logging:      Logging{Level: "debug", Format: "json"},
	}
	require.Equal(t, want, cfg)

	// fullYAML really does exercise every key: each scalar differs from
	// its default, so a key that was silently ignored would show up here.
	def := Default()
	defLeaves := def.leaves()
	for i, l := range cfg.leaves() {
		require.NotEqual(t, defLeaves[i].v.Interface(), l.v.Interface(), "fullYAML leaves %s at its default", l.path)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)

	want := Default()
	want.Appservice.ASToken, want.Appservice.HSToken = "as-secret-0123456789abcdef0123456789", "hs-secret-0123456789abcdef0123456789"
	want.Encryption.PickleKey = "pickle-secret"
	want.Identity.Secret = "identity-secret-0123456789"
	require.Equal(t, want, cfg)

	// The SPEC's defaults, spelled out.
	require.Equal(t, "http://localhost:8008", cfg.Homeserver.Address)
	require.Equal(t, "localhost", cfg.Homeserver.Domain)
	require.Equal(t, "http://localhost:29340", cfg.Appservice.Address)
	require.Equal(t, "127.0.0.1:29340", cfg.Appservice.Listen)
	require.Equal(t, "switchboard", cfg.Appservice.ID)
	require.Equal(t, "switchboard", cfg.Appservice.BotUsername)
	require.Equal(t, "switchboard bridge", cfg.Appservice.BotDisplayname)
	require.Equal(t, "sb_", cfg.Appservice.GhostPrefix)
	require.Equal(t, Database{Type: "sqlite", URI: "switchboard.db", MaxOpenConns: 20, MaxIdleConns: 0}, cfg.Database)
	require.True(t, cfg.Encryption.Allow)
	require.False(t, cfg.Encryption.Default)
	require.Equal(t, map[string]string{"*": "relay", "localhost": "user"}, cfg.Permissions)
	require.False(t, cfg.SMS.Enabled)
	require.Equal(t, "https://api.twilio.com", cfg.SMS.Twilio.APIURL)
	require.Equal(t, []string{"US", "CA"}, cfg.SMS.AllowedCountries)
	require.False(t, cfg.WhatsApp.Enabled)
	require.Equal(t, 8760*time.Hour, cfg.Retention.Default.Std())
	require.Equal(t, map[string]Duration{"matrix": 0, "whatsapp": 0, "sms": Duration(720 * time.Hour)}, cfg.Retention.Networks)
	require.Equal(t, 168*time.Hour, cfg.Retention.Metadata.Std())
	require.Equal(t, Safety{
		NewChatsPerHour: 20, SenderPerMinute: 30, ConversationPerMinute: 60, InboundPerMinute: 20,
		SMSSegmentInterval: Duration(time.Second), SMSNumberIntervals: map[string]Duration{},
		HighCostPrefixes: []string{}, HighCostPerHour: 10, SuspendScore: 100, SignalWindow: Duration(24 * time.Hour),
	}, cfg.Safety)
	require.Equal(t, Delivery{
		Workers: 4, MaxAttempts: 12, RetryBase: Duration(time.Second), RetryMax: Duration(10 * time.Minute),
		Lease: Duration(30 * time.Second), PollInterval: Duration(time.Second),
	}, cfg.Delivery)
	require.Equal(t, Logging{Level: "info", Format: "auto"}, cfg.Logging)
}

func TestParseMapDefaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		perms    map[string]string
		networks map[string]Duration
	}{{
		name:     "absent permissions follow the domain",
		doc:      set(t, minimalYAML, "homeserver.domain", "example.net"),
		perms:    map[string]string{"*": "relay", "example.net": "user"},
		networks: Default().Retention.Networks,
	}, {
		name:     "permissions replace the default map",
		doc:      set(t, minimalYAML, "permissions", `{"@root:example.net": admin}`),
		perms:    map[string]string{"@root:example.net": "admin"},
		networks: Default().Retention.Networks,
	}, {
		name:     "empty permissions mean nobody",
		doc:      set(t, minimalYAML, "permissions", `{}`),
		perms:    map[string]string{},
		networks: Default().Retention.Networks,
	}, {
		name:     "networks merge over the defaults",
		doc:      set(t, minimalYAML, "retention.networks", `{sms: 1d}`),
		perms:    map[string]string{"*": "relay", "localhost": "user"},
		networks: map[string]Duration{"matrix": 0, "whatsapp": 0, "sms": Duration(24 * time.Hour)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc))
			require.NoError(t, err)
			require.Equal(t, tc.perms, cfg.Permissions)
			require.Equal(t, tc.networks, cfg.Retention.Networks)
		})
	}
}

func TestParseRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		key      string
		sentinel error
	}{
		// Unknown keys.
		{"unknown top-level key", set(t, minimalYAML, "bridge", "{}"), "bridge", ErrUnknownKey},
		{"unknown nested key", set(t, minimalYAML, "appservice.listn", "127.0.0.1:1"), "appservice.listn", ErrUnknownKey},
		{"unknown deep key", set(t, minimalYAML, "sms.twilio.sid", "x"), "sms.twilio.sid", ErrUnknownKey},
		{"YAML extension key", minimalYAML + "x-durations: &d 2s\n", "x-durations", ErrUnknownKey},
		{"unknown network", set(t, minimalYAML, "retention.networks.telegram", "1h"), "retention.networks.telegram", ErrUnknownKey},
		{"odd unknown key is quoted", set(t, minimalYAML, "logging.log level", "info"), `logging["log level"]`, ErrUnknownKey},

		// Placeholders.
		{"generate as_token", set(t, minimalYAML, "appservice.as_token", "generate"), "appservice.as_token", ErrPlaceholder},
		{"generate hs_token", set(t, minimalYAML, "appservice.hs_token", "generate"), "appservice.hs_token", ErrPlaceholder},
		{"generate pickle_key", set(t, minimalYAML, "encryption.pickle_key", "generate"), "encryption.pickle_key", ErrPlaceholder},
		{"generate identity secret", set(t, minimalYAML, "identity.secret", "generate"), "identity.secret", ErrPlaceholder},
		{"placeholder account_sid", set(t, smsYAML, "sms.twilio.account_sid", "ACxxxxxxxx"), "sms.twilio.account_sid", ErrPlaceholder},
		{"placeholder auth_token", set(t, smsYAML, "sms.twilio.auth_token", "xxxxxxxx"), "sms.twilio.auth_token", ErrPlaceholder},
		{"example public_url", set(t, smsYAML, "sms.public_url", "https://bridge.example.org"), "sms.public_url", ErrPlaceholder},
		{"example.com public_url", set(t, smsYAML, "sms.public_url", "https://example.com/sb"), "sms.public_url", ErrPlaceholder},

		// Missing values.
		{"missing as_token", set(t, minimalYAML, "appservice.as_token", `""`), "appservice.as_token", ErrMissing},
		{"missing identity secret", "appservice: {as_token: a, hs_token: b}\nencryption: {pickle_key: c}\n", "identity.secret", ErrMissing},
		{"empty auth_token with sms on", set(t, smsYAML, "sms.twilio.auth_token", `""`), "sms.twilio.auth_token", ErrMissing},
		{"auth_token with symbols", set(t, smsYAML, "sms.twilio.auth_token", "abc-def"), "sms.twilio.auth_token", ErrInvalidValue},
		{"no numbers with sms on", set(t, smsYAML, "sms.twilio.numbers", `[]`), "sms.twilio.numbers", ErrMissing},
		{"empty ghost prefix", set(t, minimalYAML, "appservice.ghost_prefix", `""`), "appservice.ghost_prefix", ErrMissing},

		// Durations.
		{"duration in words", set(t, minimalYAML, "retention.metadata", "5 days"), "retention.metadata", ErrInvalidDuration},
		{"duration without unit", set(t, minimalYAML, "retention.default", "30"), "retention.default", ErrInvalidDuration},
		{"negative duration", set(t, minimalYAML, "delivery.lease", "-1s"), "delivery.lease", ErrInvalidDuration},
		{"network duration", set(t, minimalYAML, "retention.networks.sms", "forever"), "retention.networks.sms", ErrInvalidDuration},
		{"duration as a list", set(t, minimalYAML, "delivery.retry_max", "[1s]"), "delivery.retry_max", ErrInvalidDuration},

		// Phone numbers and countries.
		{"fictional 555 number", set(t, smsYAML, "sms.twilio.numbers", `["+14155550100", "+15550001111"]`), "sms.twilio.numbers[1]", ErrInvalidPhoneNumber},
		{"number without +", set(t, smsYAML, "sms.twilio.numbers", `["14155550100"]`), "sms.twilio.numbers[0]", ErrInvalidPhoneNumber},
		{"number not in E.164 form", set(t, smsYAML, "sms.twilio.numbers", `["+1 415 555 0100"]`), "sms.twilio.numbers[0]", ErrInvalidPhoneNumber},
		{"too short number", set(t, smsYAML, "sms.twilio.numbers", `["+999"]`), "sms.twilio.numbers[0]", ErrInvalidPhoneNumber},
		{"duplicate number", set(t, smsYAML, "sms.twilio.numbers", `["+14155550100", "+14155550100"]`), "sms.twilio.numbers[1]", ErrInvalidValue},
		{"unknown country", set(t, minimalYAML, "sms.allowed_countries", `[US, XX]`), "sms.allowed_countries[1]", ErrInvalidValue},
		{"alpha-3 country", set(t, minimalYAML, "sms.allowed_countries", `[USA]`), "sms.allowed_countries[0]", ErrInvalidValue},
		{"UK is not ISO 3166", set(t, minimalYAML, "sms.allowed_countries", `[UK]`), "sms.allowed_countries[0]", ErrInvalidValue},
		{"account_sid shape", set(t, smsYAML, "sms.twilio.account_sid", "AC123"), "sms.twilio.account_sid", ErrInvalidValue},

		// WhatsApp.
		{"empty device name", set(t, minimalYAML, "whatsapp.device_name", `""`), "whatsapp.device_name", ErrMissing},
		{"long device name", set(t, minimalYAML, "whatsapp.device_name", strings.Repeat("x", 51)), "whatsapp.device_name", ErrInvalidValue},
		{"zero login timeout", set(t, minimalYAML, "whatsapp.login_timeout", "0"), "whatsapp.login_timeout", ErrInvalidValue},
		{"short login timeout", set(t, minimalYAML, "whatsapp.login_timeout", "5s"), "whatsapp.login_timeout", ErrInvalidValue},
		{"long login timeout", set(t, minimalYAML, "whatsapp.login_timeout", "2h"), "whatsapp.login_timeout", ErrInvalidValue},
		{"login timeout in words", set(t, minimalYAML, "whatsapp.login_timeout", "soon"), "whatsapp.login_timeout", ErrInvalidDuration},

		// Permissions.
		{"bad permission level", set(t, minimalYAML, "permissions", `{"*": superuser}`), `permissions["*"]`, ErrInvalidValue},
		{"bad permission key", set(t, minimalYAML, "permissions", `{"not a server": user}`), `permissions["not a server"]`, ErrInvalidValue},

		// URLs and addresses.
		{"homeserver without scheme", set(t, minimalYAML, "homeserver.address", "localhost:8008"), "homeserver.address", ErrInvalidValue},
		{"appservice ftp URL", set(t, minimalYAML, "appservice.address", "ftp://localhost"), "appservice.address", ErrInvalidValue},
		{"api_url not a URL", set(t, minimalYAML, "sms.twilio.api_url", "api.twilio.com"), "sms.twilio.api_url", ErrInvalidValue},
		{"public_url not a URL", set(t, smsYAML, "sms.public_url", "/sms"), "sms.public_url", ErrInvalidValue},
		{"listen without port", set(t, minimalYAML, "appservice.listen", "127.0.0.1"), "appservice.listen", ErrInvalidValue},
		{"listen bad port", set(t, minimalYAML, "appservice.listen", "127.0.0.1:http"), "appservice.listen", ErrInvalidValue},
		{"bad domain", set(t, minimalYAML, "homeserver.domain", "https://example.net"), "homeserver.domain", ErrInvalidValue},

		// Other values.
		{"upper-case ghost prefix", set(t, minimalYAML, "appservice.ghost_prefix", "SB_"), "appservice.ghost_prefix", ErrInvalidValue},
		{"bot username with @", set(t, minimalYAML, "appservice.bot_username", "'@bot'"), "appservice.bot_username", ErrInvalidValue},
		{"database type", set(t, minimalYAML, "database.type", "mysql"), "database.type", ErrInvalidValue},
		{"postgres with a file", set(t, minimalYAML, "database.type", "postgres"), "database.uri", ErrInvalidValue},
		{"negative conns", set(t, minimalYAML, "database.max_open_conns", "-1"), "database.max_open_conns", ErrInvalidValue},
		{"zero workers", set(t, minimalYAML, "delivery.workers", "0"), "delivery.workers", ErrInvalidValue},
		{"zero poll interval", set(t, minimalYAML, "delivery.poll_interval", "0"), "delivery.poll_interval", ErrInvalidValue},
		{"retry_max below retry_base", set(t, minimalYAML, "delivery.retry_base", "1m", "delivery.retry_max", "1s"), "delivery.retry_max", ErrInvalidValue},
		{"negative chats per hour", set(t, minimalYAML, "safety.new_chats_per_hour", "-5"), "safety.new_chats_per_hour", ErrInvalidValue},
		{"admin room alias", set(t, minimalYAML, "safety.admin_room", `"#admins:example.net"`), "safety.admin_room", ErrInvalidValue},
		{"negative sender limit", set(t, minimalYAML, "safety.sender_messages_per_minute", "-1"), "safety.sender_messages_per_minute", ErrInvalidValue},
		{"negative sms pacing", set(t, minimalYAML, "safety.sms_segment_interval", "-1s"), "safety.sms_segment_interval", ErrInvalidDuration},
		{"high cost prefix without plus", set(t, minimalYAML, "safety.high_cost_prefixes", `["44"]`), "safety.high_cost_prefixes[0]", ErrInvalidValue},
		{"pacing override for a bad number", set(t, minimalYAML, "safety.sms_number_intervals", `{"555": 1s}`), `safety.sms_number_intervals.555`, ErrInvalidPhoneNumber},
		{"score without window", set(t, set(t, minimalYAML, "safety.suspend_score", "10"), "safety.signal_window", "0s"), "safety.signal_window", ErrInvalidValue},
		{"log level", set(t, minimalYAML, "logging.level", "verbose"), "logging.level", ErrInvalidValue},
		{"log format", set(t, minimalYAML, "logging.format", "xml"), "logging.format", ErrInvalidValue},

		// Types.
		{"list for a string", set(t, minimalYAML, "appservice.listen", "[a, b]"), "appservice.listen", ErrInvalidValue},
		{"word for an int", set(t, minimalYAML, "delivery.workers", "many"), "delivery.workers", ErrInvalidValue},
		{"word for a bool", set(t, minimalYAML, "sms.enabled", "sometimes"), "sms.enabled", ErrInvalidValue},
		{"scalar for a section", set(t, minimalYAML, "safety", "strict"), "safety", ErrInvalidValue},
		{"scalar for a list", set(t, minimalYAML, "sms.allowed_countries", "US"), "sms.allowed_countries", ErrInvalidValue},
		{"list item not a string", set(t, minimalYAML, "sms.allowed_countries", "[US, [CA]]"), "sms.allowed_countries[1]", ErrInvalidValue},
		{"duplicate key", minimalYAML + "logging:\n  level: info\n  level: debug\n", "logging.level", ErrInvalidValue},
		{"document is a list", "- a\n- b\n", rootKey, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc))
			require.Nil(t, cfg)
			requireKeyError(t, err, tc.key, tc.sentinel)
		})
	}
}

func TestParseAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doc   string
		check func(t *testing.T, c *Config)
	}{
		{"valid US and UK numbers", set(t, smsYAML, "sms.twilio.numbers", `["+14155550100", "+12025550123", "+442071838750"]`), func(t *testing.T, c *Config) {
			require.Len(t, c.SMS.Twilio.Numbers, 3)
		}},
		{"sms placeholders are fine while sms is off", set(t, minimalYAML,
			"sms.public_url", "https://bridge.example.org", "sms.twilio.account_sid", "ACxxxxxxxx",
			"sms.twilio.auth_token", "xxxxxxxx", "sms.twilio.numbers", `["+15550001111"]`), func(t *testing.T, c *Config) {
			require.False(t, c.SMS.Enabled)
		}},
		{"lower-case countries are upper-cased", set(t, minimalYAML, "sms.allowed_countries", "[gb, fr]"), func(t *testing.T, c *Config) {
			require.Equal(t, []string{"GB", "FR"}, c.SMS.AllowedCountries)
		}},
		{"days and zero durations", set(t, minimalYAML, "retention.default", "365d", "retention.metadata", "0"), func(t *testing.T, c *Config) {
			require.Equal(t, 365*24*time.Hour, c.Retention.Default.Std())
			require.Zero(t, c.Retention.Metadata)
		}},
		{"postgresql scheme", set(t, minimalYAML, "database.type", "postgres", "database.uri", "postgresql://u@h/db"), func(t *testing.T, c *Config) {
			require.Equal(t, DatabasePostgres, c.Database.Type)
		}},
		{"pickle_key optional without encryption", set(t, minimalYAML, "encryption", "{allow: false}"), func(t *testing.T, c *Config) {
			require.Empty(t, c.Encryption.PickleKey)
		}},
		{"null section keeps defaults", set(t, minimalYAML, "delivery", "~"), func(t *testing.T, c *Config) {
			require.Equal(t, Default().Delivery, c.Delivery)
		}},
		{"IPv6 listen and user-ID permission", set(t, minimalYAML, "appservice.listen", "'[::1]:29340'",
			"permissions", `{"@admin:localhost": admin, "*": relay}`), func(t *testing.T, c *Config) {
			require.Equal(t, "[::1]:29340", c.Appservice.Listen)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc))
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
}

func TestParseAlias(t *testing.T) {
	doc := minimalYAML + "delivery:\n  retry_base: &d 10s\n  lease: *d\n"
	cfg, err := Parse([]byte(doc))
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, cfg.Delivery.Lease.Std())
}

func TestParseSeveralErrors(t *testing.T) {
	doc := set(t, minimalYAML, "logging.level", "loud", "delivery.workers", "0")
	_, err := Parse([]byte(doc))
	requireKeyError(t, err, "logging.level", ErrInvalidValue)
	requireKeyError(t, err, "delivery.workers", ErrInvalidValue)
	require.NotContains(t, err.Error(), "\n", "the daemon prints config errors on one line")

	// A file full of junk gives a bounded message.
	_, err = Parse([]byte(strings.Repeat("junk: 1\n", 15)))
	require.Len(t, keyErrors(err), 15)
	require.Contains(t, err.Error(), "; and 5 more")
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse([]byte("homeserver:\n  address: [unclosed\n"))
	require.ErrorIs(t, err, ErrSyntax)
}

func TestErrorsDoNotEchoSecrets(t *testing.T) {
	for _, doc := range []string{
		set(t, minimalYAML, "database.type", "postgres", "database.uri", "mysql://sb:hunter2@db/sb"),
		set(t, minimalYAML, "appservice.as_token", "{hunter2: x}"),
		set(t, smsYAML, "sms.twilio.account_sid", "AChunter2"),
	} {
		_, err := Parse([]byte(doc))
		require.Error(t, err)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

func TestKeyErrorFormat(t *testing.T) {
	_, err := Parse([]byte(set(t, smsYAML, "sms.twilio.numbers", `["+15550001111"]`)))
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "config: sms.twilio.numbers[0]: not a valid E.164 phone number"), err.Error())

	_, err = Parse([]byte(set(t, minimalYAML, "appservice.listn", "x")))
	require.EqualError(t, err, `config: appservice.listn: unknown key (did you mean "listen"?)`)
}

func TestEnvOverrides(t *testing.T) {
	file := set(t, smsYAML, "appservice.as_token", "generate", "sms.enabled", "false")
	cfg, err := ParseEnv([]byte(file), envMap(map[string]string{
		"SWITCHBOARD_SMS_TWILIO_AUTH_TOKEN": "fromenv0123456789abcdef01234567",
		"SWITCHBOARD_APPSERVICE_AS_TOKEN":   "as-from-env-0123456789abcdef0123456789",
		"SWITCHBOARD_DATABASE_URI":          "/var/lib/switchboard/sb.db",
		"SWITCHBOARD_SMS_ENABLED":           "true",
		"SWITCHBOARD_SMS_TWILIO_NUMBERS":    "+14155550100, +14155550101",
		"SWITCHBOARD_SMS_ALLOWED_COUNTRIES": "us,gb",
		"SWITCHBOARD_RETENTION_METADATA":    "7d",
		"SWITCHBOARD_DELIVERY_WORKERS":      "8",
		"SWITCHBOARD_ENCRYPTION_ALLOW":      "off",
		"SWITCHBOARD_UNRELATED":             "ignored",
	}))
	require.NoError(t, err)
	require.Equal(t, "fromenv0123456789abcdef01234567", cfg.SMS.Twilio.AuthToken)
	require.Equal(t, "as-from-env-0123456789abcdef0123456789", cfg.Appservice.ASToken)
	require.Equal(t, "/var/lib/switchboard/sb.db", cfg.Database.URI)
	require.True(t, cfg.SMS.Enabled)
	require.Equal(t, []string{"+14155550100", "+14155550101"}, cfg.SMS.Twilio.Numbers)
	require.Equal(t, []string{"US", "GB"}, cfg.SMS.AllowedCountries)
	require.Equal(t, 7*24*time.Hour, cfg.Retention.Metadata.Std())
	require.Equal(t, 8, cfg.Delivery.Workers)
	require.False(t, cfg.Encryption.Allow)
	require.Equal(t, "hs-secret-0123456789abcdef0123456789", cfg.Appservice.HSToken, "keys without an override keep the file's value")

	// The domain from the environment also picks the default permissions.
	cfg, err = ParseEnv([]byte(minimalYAML), envMap(map[string]string{"SWITCHBOARD_HOMESERVER_DOMAIN": "example.net"}))
	require.NoError(t, err)
	require.Equal(t, "user", cfg.Permissions["example.net"])

	// Overridden values are validated like file values.
	_, err = ParseEnv([]byte(smsYAML), envMap(map[string]string{"SWITCHBOARD_SMS_TWILIO_NUMBERS": "+15550001111"}))
	requireKeyError(t, err, "sms.twilio.numbers[0]", ErrInvalidPhoneNumber)
}

func TestEnvRefused(t *testing.T) {
	for _, tc := range []struct {
		name, env, value, key string
		sentinel              error
	}{
		{"bool", "SWITCHBOARD_SMS_ENABLED", "maybe", "sms.enabled", ErrInvalidValue},
		{"int", "SWITCHBOARD_DELIVERY_WORKERS", "four", "delivery.workers", ErrInvalidValue},
		{"duration", "SWITCHBOARD_RETENTION_DEFAULT", "forever", "retention.default", ErrInvalidDuration},
		{"negative duration", "SWITCHBOARD_DELIVERY_LEASE", "-5s", "delivery.lease", ErrInvalidDuration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnv([]byte(minimalYAML), envMap(map[string]string{tc.env: tc.value}))
			requireKeyError(t, err, tc.key, tc.sentinel)
			require.Contains(t, err.Error(), tc.env)
		})
	}
}

func TestEnvNames(t *testing.T) {
	require.Equal(t, "SWITCHBOARD_SMS_TWILIO_AUTH_TOKEN", EnvName("sms.twilio.auth_token"))
	names := EnvNames()
	for _, want := range []string{
		"SWITCHBOARD_HOMESERVER_ADDRESS", "SWITCHBOARD_APPSERVICE_AS_TOKEN", "SWITCHBOARD_APPSERVICE_HS_TOKEN",
		"SWITCHBOARD_DATABASE_URI", "SWITCHBOARD_ENCRYPTION_PICKLE_KEY", "SWITCHBOARD_IDENTITY_SECRET",
		"SWITCHBOARD_SMS_ENABLED", "SWITCHBOARD_SMS_TWILIO_ACCOUNT_SID", "SWITCHBOARD_SMS_TWILIO_AUTH_TOKEN",
		"SWITCHBOARD_SMS_TWILIO_NUMBERS", "SWITCHBOARD_RETENTION_METADATA", "SWITCHBOARD_DELIVERY_POLL_INTERVAL",
		"SWITCHBOARD_LOGGING_FORMAT",
	} {
		require.Contains(t, names, want)
	}
	require.NotContains(t, names, "SWITCHBOARD_PERMISSIONS")
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"0", 0, "0"},
		{"30s", 30 * time.Second, "30s"},
		{"10m", 10 * time.Minute, "10m"},
		{"1h30m", 90 * time.Minute, "90m"},
		{"168h", 168 * time.Hour, "7d"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"365d", 365 * 24 * time.Hour, "365d"},
		{"25h", 25 * time.Hour, "25h"},
		{"250ms", 250 * time.Millisecond, "250ms"},
	} {
		d, err := ParseDuration(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, d.Std(), tc.in)
		require.Equal(t, tc.str, d.String(), tc.in)
		back, err := ParseDuration(d.String())
		require.NoError(t, err)
		require.Equal(t, d, back, "String() must parse back")
	}
	for _, bad := range []string{"", "5 days", "30", "-1s", "-1d", "+1d", "d", "1.5d", "1w", "9999999999999999d"} {
		_, err := ParseDuration(bad)
		require.ErrorIs(t, err, ErrInvalidDuration, bad)
	}

	out, err := yaml.Marshal(struct{ D Duration }{Duration(720 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, "d: 30d\n", string(out))
}

func TestPermissionLevel(t *testing.T) {
	cfg := &Config{Permissions: map[string]string{
		"*": "relay", "example.net": "user", "@boss:example.net": "admin",
	}}
	require.Equal(t, "admin", cfg.PermissionLevel("@boss:example.net"))
	require.Equal(t, "user", cfg.PermissionLevel("@alice:example.net"))
	require.Equal(t, "relay", cfg.PermissionLevel("@bob:elsewhere.org"))
	delete(cfg.Permissions, "*")
	require.Equal(t, "", cfg.PermissionLevel("@bob:elsewhere.org"))
}

// The example config documents every key with a comment, uses the
// defaults the code applies, and parses once its secrets are generated.
func TestExampleConfig(t *testing.T) {
	example := switchboard.ExampleConfig

	t.Run("every key is documented", func(t *testing.T) {
		doc, err := parseDoc(example)
		require.NoError(t, err)
		var walk func(n *yaml.Node, typ reflect.Type, path string)
		walk = func(n *yaml.Node, typ reflect.Type, path string) {
			for i := range typ.NumField() {
				name := yamlName(typ.Field(i))
				if name == "" {
					continue
				}
				key := joinKey(path, name)
				idx := keyIndex(n, name)
				require.GreaterOrEqual(t, idx, 0, "example config lacks %s", key)
				k, v := n.Content[idx], n.Content[idx+1]
				require.True(t, k.HeadComment != "" || k.LineComment != "" || v.LineComment != "",
					"example config has no comment for %s", key)
				if ft := typ.Field(i).Type; ft.Kind() == reflect.Struct && ft != durationType {
					walk(v, ft, key)
				}
			}
		}
		walk(docRoot(doc), reflect.TypeFor[Config](), "")
	})

	t.Run("placeholders are refused as they are", func(t *testing.T) {
		_, err := Parse(example)
		requireKeyError(t, err, "appservice.as_token", ErrPlaceholder)
		requireKeyError(t, err, "identity.secret", ErrPlaceholder)
	})

	t.Run("values are the defaults", func(t *testing.T) {
		out, generated, err := GenerateSecrets(example, nil)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"appservice.as_token", "appservice.hs_token", "encryption.pickle_key", "identity.secret", "provisioning.shared_secret"}, generated)
		cfg, err := Parse(out)
		require.NoError(t, err)

		want := Default()
		want.Appservice.ASToken, want.Appservice.HSToken = cfg.Appservice.ASToken, cfg.Appservice.HSToken
		want.Encryption.PickleKey, want.Identity.Secret = cfg.Encryption.PickleKey, cfg.Identity.Secret
		want.Provisioning.SharedSecret = cfg.Provisioning.SharedSecret
		// The SPEC's placeholders, harmless while sms is disabled.
		want.SMS.PublicURL = "https://bridge.example.org"
		want.SMS.Twilio.AccountSID, want.SMS.Twilio.AuthToken = "ACxxxxxxxx", "xxxxxxxx"
		want.SMS.Twilio.Numbers = []string{"+15550001111"}
		require.Equal(t, want, cfg)
	})

	t.Run("re-encoding keeps it byte for byte", func(t *testing.T) {
		doc, err := parseDoc(example)
		require.NoError(t, err)
		out, err := encodeDoc(doc)
		require.NoError(t, err)
		require.Equal(t, string(example), string(out))
	})
}
