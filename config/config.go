// Package config reads, validates, generates and upgrades switchboard's
// YAML configuration file.
//
// The file format is the external contract in docs/contract.md; the annotated
// example config embedded in the root package ([switchboard.ExampleConfig])
// documents every key. Loading is strict: an unknown key, a value of the
// wrong type, a bad duration, phone number, URL or country code, or a
// placeholder left from the example is an error that names the key by its
// dotted path (see [KeyError]). Every scalar key can be overridden from the
// environment as SWITCHBOARD_ + the upper-cased path with dots replaced by
// underscores (see [EnvName]).
//
// [LoadOrCreate] is what the daemon calls: it writes a fresh config on
// first run, fills in "generate" secrets, adds keys that an older file lacks
// (keeping the admin's values and comments), and returns the validated
// [Config].
package config

import (
	"strings"
	"time"
)

// Config is the whole daemon configuration. Field names follow the YAML
// keys; see the example config for what each does.
type Config struct {
	Homeserver Homeserver `yaml:"homeserver"`
	Appservice Appservice `yaml:"appservice"`
	Database   Database   `yaml:"database"`
	Encryption Encryption `yaml:"encryption"`
	// Permissions maps "*", a server name or a user ID to a level
	// ([PermRelay], [PermUser] or [PermAdmin]). See [Permissions.Level].
	Permissions map[string]string `yaml:"permissions"`
	Identity    Identity          `yaml:"identity"`
	SMS         SMS               `yaml:"sms"`
	WhatsApp    WhatsApp          `yaml:"whatsapp"`
	Retention   Retention         `yaml:"retention"`
	Safety      Safety            `yaml:"safety"`
	Delivery    Delivery          `yaml:"delivery"`
	// Provisioning configures the provisioning API.
	Provisioning Provisioning `yaml:"provisioning"`
	Logging      Logging      `yaml:"logging"`

	// path is the file the config was loaded from, if any.
	path string
	// generated and added record what LoadOrCreate changed in the file.
	generated []string
	added     []string
}

// Homeserver is the Matrix homeserver the bridge is attached to.
type Homeserver struct {
	// Address is the client-server API base URL.
	Address string `yaml:"address"`
	// Domain is the server name, the part after ':' in user IDs.
	Domain string `yaml:"domain"`
}

// Appservice is the application service registration and listener.
type Appservice struct {
	// Address is the URL the homeserver uses to reach the bridge.
	Address string `yaml:"address"`
	// Listen is the host:port the HTTP server binds.
	Listen string `yaml:"listen"`
	// ID is the appservice ID in the registration.
	ID string `yaml:"id"`
	// BotUsername is the localpart of the bridge bot.
	BotUsername string `yaml:"bot_username"`
	// BotDisplayname is the bridge bot's display name.
	BotDisplayname string `yaml:"bot_displayname"`
	// GhostPrefix starts the localpart of every ghost user.
	GhostPrefix string `yaml:"ghost_prefix"`
	// ASToken authenticates the bridge to the homeserver. Secret.
	ASToken string `yaml:"as_token"`
	// HSToken authenticates the homeserver to the bridge. Secret.
	HSToken string `yaml:"hs_token"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the listener, to
	// callers with the as_token or hs_token as Bearer; off by default.
	Pprof bool `yaml:"pprof"`
	// MessageStatusEvents makes the bot report what happened to each
	// message sent from Matrix as a com.beeper.message_send_status event
	// (besides the failure notices); on by default.
	MessageStatusEvents bool `yaml:"message_status_events"`
	// DoublePuppet lets users of homeserver.domain who opt in appear as
	// their own Matrix account for what they send from another network's
	// app: the registration gets a non-exclusive namespace for the
	// domain's users, and the bot sends as them with the as_token (never
	// reads as them). Off by default.
	DoublePuppet bool `yaml:"double_puppet"`
	// PersonalSpaces gives each Matrix user a space (an m.space room the
	// bot makes and invites them to) holding their portals; on by
	// default.
	PersonalSpaces bool `yaml:"personal_spaces"`
}

// Database selects and configures the SQL database.
type Database struct {
	// Type is [DatabaseSQLite] or [DatabasePostgres].
	Type string `yaml:"type"`
	// URI is a file path (made absolute by Load, relative to the config
	// file) for SQLite, or a postgres:// URI.
	URI string `yaml:"uri"`
	// MaxOpenConns limits open connections; 0 means no limit.
	MaxOpenConns int `yaml:"max_open_conns"`
	// MaxIdleConns limits idle connections kept in the pool; 0 keeps as
	// many as MaxOpenConns.
	MaxIdleConns int `yaml:"max_idle_conns"`
}

// Encryption configures Matrix end-to-end encryption.
type Encryption struct {
	// Allow lets the bridge join encrypted rooms and decrypt/encrypt.
	Allow bool `yaml:"allow"`
	// Default creates new portal rooms encrypted.
	Default bool `yaml:"default"`
	// PickleKey encrypts the crypto store. Secret.
	PickleKey string `yaml:"pickle_key"`
	// Appservice takes the bot device's encryption traffic (to-device
	// events, device-list changes, one-time-key counts) from the
	// homeserver's transactions (MSC2409, MSC3202) instead of a /sync
	// loop. The registration then asks for it (org.matrix.msc3202).
	Appservice bool `yaml:"appservice"`
	// MSC4190 creates the bot device through the appservice device API
	// (PUT /devices/{deviceId}) instead of m.login.application_service,
	// which homeservers with next-generation auth (MSC3861) lack. The
	// registration then carries io.element.msc4190.
	MSC4190 bool `yaml:"msc4190"`
	// BotPassword is the bot user's password, used only to answer a
	// homeserver that asks for it (user-interactive authentication,
	// m.login.password) before accepting the bot's cross-signing keys.
	// Dendrite asks, also of appservice users; Synapse does not. Secret;
	// empty: none (the bot's device then stays unverified on such servers).
	BotPassword string `yaml:"bot_password"`
}

// Identity configures pseudonyms and at-rest encryption of phone numbers.
type Identity struct {
	// Secret keys pseudonyms and phone number encryption. Secret; changing
	// it changes every ghost and makes stored numbers unreadable.
	Secret string `yaml:"secret"`
}

// SMS configures the Twilio SMS connector.
type SMS struct {
	Enabled bool `yaml:"enabled"`
	// PublicURL is the base URL Twilio calls; webhook signatures are
	// checked against it.
	PublicURL string `yaml:"public_url"`
	Twilio    Twilio `yaml:"twilio"`
	// AllowedCountries are ISO 3166 alpha-2 codes (upper case after
	// loading) that SMS may be sent to.
	AllowedCountries []string `yaml:"allowed_countries"`
}

// Twilio holds the Twilio account used for SMS.
type Twilio struct {
	AccountSID string `yaml:"account_sid"`
	// AuthToken is the Twilio auth token. Secret.
	AuthToken string `yaml:"auth_token"`
	// APIURL is the Twilio REST API base URL.
	APIURL string `yaml:"api_url"`
	// Numbers is the pool of E.164 numbers the bridge sends from.
	Numbers []string `yaml:"numbers"`
}

// WhatsApp configures the WhatsApp connector.
type WhatsApp struct {
	Enabled bool `yaml:"enabled"`
	// DeviceName is the name WhatsApp shows for the bridge under "Linked
	// devices" on the user's phone.
	DeviceName string `yaml:"device_name"`
	// LoginTimeout is how long `login whatsapp` waits for a QR code to be
	// scanned or a pairing code to be entered before giving up.
	LoginTimeout Duration `yaml:"login_timeout"`
	// Backfill is WhatsApp's history in Matrix portals.
	Backfill WhatsAppBackfill `yaml:"backfill"`
}

// WhatsAppBackfill configures WhatsApp history in Matrix portals: the
// history sync after `login whatsapp` and the `backfill N` command. History
// goes only to Matrix (never to an SMS leg), no further back than the
// conversation's retention, and never from the relay account.
type WhatsAppBackfill struct {
	// Enabled turns history on.
	Enabled bool `yaml:"enabled"`
	// MaxMessagesPerChat is the most messages one chat receives from one
	// history sync or one `backfill` (the newest are kept).
	MaxMessagesPerChat int `yaml:"max_messages_per_chat"`
	// MaxConversations is how many chats without a portal one login's
	// history sync opens a portal for, most recently active first; 0
	// fills only portals that exist.
	MaxConversations int `yaml:"max_conversations"`
}

// Retention is how long messages and metadata are kept. Zero means keep.
type Retention struct {
	// Default applies when nothing stricter does.
	Default Duration `yaml:"default"`
	// Networks holds a default per network ([NetworkMatrix],
	// [NetworkWhatsApp], [NetworkSMS]); a conversation applies the
	// strictest of its networks'. Keys absent from the file keep their
	// defaults.
	Networks map[string]Duration `yaml:"networks" config:"merge"`
	// Metadata is the longest delivery metadata is kept.
	Metadata Duration `yaml:"metadata"`
}

// Safety holds limits and abuse signals.
type Safety struct {
	// NewChatsPerHour limits how many new conversations one user may start
	// per hour; 0 means no limit.
	NewChatsPerHour int `yaml:"new_chats_per_hour"`
	// AdminRoom is the room ID reports and flags are sent to; empty means
	// admins are messaged directly.
	AdminRoom string `yaml:"admin_room"`
	// SenderPerMinute limits the messages one sender (a Matrix user, or a
	// contact on another network) may send per minute; 0 means no limit.
	SenderPerMinute int `yaml:"sender_messages_per_minute"`
	// ConversationPerMinute limits the messages per minute in one
	// conversation, all senders together; 0 means no limit.
	ConversationPerMinute int `yaml:"conversation_messages_per_minute"`
	// InboundPerMinute limits the messages per minute one inbound contact
	// (SMS, WhatsApp) may send into the bridge; 0 means no limit.
	InboundPerMinute int `yaml:"inbound_messages_per_minute"`
	// SMSSegmentInterval paces SMS: the time between segments sent from
	// one pool number (a US long code sends about 1 segment/s); 0 means
	// no pacing.
	SMSSegmentInterval Duration `yaml:"sms_segment_interval"`
	// SMSNumberIntervals overrides SMSSegmentInterval for pool numbers of
	// another type (toll-free, short code), keyed by E.164 number.
	SMSNumberIntervals map[string]Duration `yaml:"sms_number_intervals"`
	// HighCostPrefixes are E.164 prefixes ("+44", "+882") of destinations
	// that cost more, or that SMS-pumping fraud targets.
	HighCostPrefixes []string `yaml:"high_cost_prefixes"`
	// HighCostPerHour limits the SMS one user may send to HighCostPrefixes
	// per hour; 0 means no limit.
	HighCostPerHour int `yaml:"high_cost_per_hour"`
	// SuspendScore is the abuse score at which a user is suspended pending
	// admin review; 0 means never automatically.
	SuspendScore int `yaml:"suspend_score"`
	// SignalWindow is how far back abuse signals count toward the score.
	SignalWindow Duration `yaml:"signal_window"`
}

// Delivery tunes the outgoing message queue.
type Delivery struct {
	// Workers is the number of concurrent senders.
	Workers int `yaml:"workers"`
	// MaxAttempts is how often a message is tried before its sender is
	// told it failed.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBase is the first retry delay; it doubles up to RetryMax.
	RetryBase Duration `yaml:"retry_base"`
	RetryMax  Duration `yaml:"retry_max"`
	// Lease is how long a process owns a queue lane before another process
	// may take it over.
	Lease Duration `yaml:"lease"`
	// PollInterval is how often the queue is checked for due work.
	PollInterval Duration `yaml:"poll_interval"`
}

// Logging configures the log output.
type Logging struct {
	// Level is trace, debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is auto (console on a terminal, else JSON), console or json.
	Format string `yaml:"format"`
}

// Permissions is the permissions section: "*", a server name or a user ID
// mapped to a permission level. [Config.Permissions] converts to it.
type Permissions map[string]string

// Permission levels, the values of [Config.Permissions].
const (
	PermRelay = "relay"
	PermUser  = "user"
	PermAdmin = "admin"
)

// Database types.
const (
	DatabaseSQLite   = "sqlite"
	DatabasePostgres = "postgres"
)

// Network names, the keys of [Retention.Networks].
const (
	NetworkMatrix   = "matrix"
	NetworkWhatsApp = "whatsapp"
	NetworkSMS      = "sms"
)

// Default returns the configuration used for every key the file leaves
// out. Secrets are empty, so it does not validate on its own. When the
// permissions section is absent, the server that gets user level is
// homeserver.domain (localhost by default).
func Default() *Config {
	return &Config{
		Homeserver: Homeserver{
			Address: "http://localhost:8008",
			Domain:  "localhost",
		},
		Appservice: Appservice{
			Address:        "http://localhost:29340",
			Listen:         "127.0.0.1:29340",
			ID:             "switchboard",
			BotUsername:    "switchboard",
			BotDisplayname: "switchboard bridge",
			GhostPrefix:    "sb_",

			MessageStatusEvents: true,
			PersonalSpaces:      true,
		},
		Database: Database{
			Type:         DatabaseSQLite,
			URI:          "switchboard.db",
			MaxOpenConns: 20,
			MaxIdleConns: 0,
		},
		Encryption:  Encryption{Allow: true, Default: false},
		Permissions: map[string]string{"*": PermRelay, "localhost": PermUser},
		SMS: SMS{
			PublicURL: "",
			Twilio: Twilio{
				APIURL: "https://api.twilio.com",
			},
			AllowedCountries: []string{"US", "CA"},
		},
		WhatsApp: WhatsApp{
			DeviceName:   "switchboard",
			LoginTimeout: Duration(3 * time.Minute),
			Backfill:     WhatsAppBackfill{Enabled: true, MaxMessagesPerChat: 50, MaxConversations: 10},
		},
		Retention: Retention{
			Default: Duration(8760 * time.Hour),
			Networks: map[string]Duration{
				NetworkMatrix:   0,
				NetworkWhatsApp: 0,
				NetworkSMS:      Duration(720 * time.Hour),
			},
			Metadata: Duration(168 * time.Hour),
		},
		Safety: Safety{
			NewChatsPerHour:       20,
			SenderPerMinute:       30,
			ConversationPerMinute: 60,
			InboundPerMinute:      20,
			SMSSegmentInterval:    Duration(time.Second),
			SMSNumberIntervals:    map[string]Duration{},
			HighCostPrefixes:      []string{},
			HighCostPerHour:       10,
			SuspendScore:          100,
			SignalWindow:          Duration(24 * time.Hour),
		},
		Delivery: Delivery{
			Workers:      4,
			MaxAttempts:  12,
			RetryBase:    Duration(time.Second),
			RetryMax:     Duration(10 * time.Minute),
			Lease:        Duration(30 * time.Second),
			PollInterval: Duration(time.Second),
		},
		Logging: Logging{Level: "info", Format: "auto"},
	}
}

// Path returns the file the config was loaded from, or "" if it was parsed
// from bytes.
func (c *Config) Path() string { return c.path }

// GeneratedKeys returns the secret keys whose "generate" placeholder
// [LoadOrCreate] replaced with a random value and wrote to the file.
func (c *Config) GeneratedKeys() []string { return c.generated }

// AddedKeys returns the keys [LoadOrCreate] added to an older file from the
// example config, so the daemon can tell the admin.
func (c *Config) AddedKeys() []string { return c.added }

// PermissionLevel returns the level of a Matrix user (see
// [Permissions.Level]).
func (c *Config) PermissionLevel(userID string) string {
	return Permissions(c.Permissions).Level(userID)
}

// Level returns the level of a Matrix user: the entry for the user ID if
// there is one, else the entry for its server name, else the entry for
// "*", else "" (no access).
func (p Permissions) Level(userID string) string {
	if level, ok := p[userID]; ok {
		return level
	}
	if _, server, ok := strings.Cut(userID, ":"); ok {
		if level, ok := p[server]; ok {
			return level
		}
	}
	return p["*"]
}
