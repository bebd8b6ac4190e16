package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// Placeholder values from the example config.
const (
	// PlaceholderGenerate in a secret is replaced with a random value on
	// first run; left in place at run time it is an error.
	PlaceholderGenerate   = "generate"
	placeholderAccountSID = "ACxxxxxxxx"
	placeholderAuthToken  = "xxxxxxxx"
)

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	// localpartPattern is the set of characters Matrix allows in user ID
	// localparts (historical characters excluded).
	localpartPattern  = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)
	serverNamePattern = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)
	userIDPattern     = regexp.MustCompile(`^@[^:\s]+:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)
	allowedLevels     = []string{"trace", "debug", "info", "warn", "error"}
	allowedFormats    = []string{"auto", "console", "json"}
	allowedNetworks   = []string{NetworkMatrix, NetworkWhatsApp, NetworkSMS}
	allowedPerms      = []string{PermRelay, PermUser, PermAdmin}
)

// normalize canonicalizes case-insensitive values before validation.
func (c *Config) normalize() {
	c.Database.Type = strings.ToLower(strings.TrimSpace(c.Database.Type))
	c.Logging.Level = strings.ToLower(strings.TrimSpace(c.Logging.Level))
	c.Logging.Format = strings.ToLower(strings.TrimSpace(c.Logging.Format))
	for i, cc := range c.SMS.AllowedCountries {
		c.SMS.AllowedCountries[i] = strings.ToUpper(strings.TrimSpace(cc))
	}
	for k, v := range c.Permissions {
		c.Permissions[k] = strings.ToLower(strings.TrimSpace(v))
	}
}

// Validate checks every value and returns a [*KeyError] naming the key of
// the first problem, or [Errors] listing all of them when there are
// several.
func (c *Config) Validate() error {
	var e errorList

	checkURL(&e, "homeserver.address", c.Homeserver.Address)
	if c.Homeserver.Domain == "" {
		e.add("homeserver.domain", ErrMissing)
	} else if !serverNamePattern.MatchString(c.Homeserver.Domain) {
		e.add("homeserver.domain", fmt.Errorf("%w: %q is not a server name (like example.org)", ErrInvalidValue, c.Homeserver.Domain))
	}

	c.validateAppservice(&e)
	c.validateDatabase(&e)

	checkSecret(&e, "encryption.pickle_key", c.Encryption.PickleKey, c.Encryption.Allow)
	checkSecret(&e, "encryption.bot_password", c.Encryption.BotPassword, false)
	checkSecret(&e, "identity.secret", c.Identity.Secret, true)
	if s := c.Identity.Secret; s != "" && s != PlaceholderGenerate && len(s) < keyring.MinSecretLength {
		e.add("identity.secret", fmt.Errorf("%w: at least %d characters (every key and pseudonym is derived from it)", ErrInvalidValue, keyring.MinSecretLength))
	}

	for _, k := range sortedKeys(c.Permissions) {
		key := joinKey("permissions", k)
		if k != "*" && !serverNamePattern.MatchString(k) && !userIDPattern.MatchString(k) {
			e.add(key, fmt.Errorf("%w: must be \"*\", a server name or a user ID like @alice:example.org", ErrInvalidValue))
		}
		if v := c.Permissions[k]; !slices.Contains(allowedPerms, v) {
			e.add(key, fmt.Errorf("%w: %q is not a permission level (relay, user or admin)", ErrInvalidValue, v))
		}
	}

	c.validateSMS(&e)
	c.validateWhatsApp(&e)
	c.validateRetention(&e)

	c.validateSafety(&e)

	c.validateDelivery(&e)
	c.validateProvisioning(&e)

	if !slices.Contains(allowedLevels, c.Logging.Level) {
		e.add("logging.level", fmt.Errorf("%w: %q (use trace, debug, info, warn or error)", ErrInvalidValue, c.Logging.Level))
	}
	if !slices.Contains(allowedFormats, c.Logging.Format) {
		e.add("logging.format", fmt.Errorf("%w: %q (use auto, console or json)", ErrInvalidValue, c.Logging.Format))
	}
	return e.err()
}

func (c *Config) validateAppservice(e *errorList) {
	a := &c.Appservice
	checkURL(e, "appservice.address", a.Address)
	if a.Listen == "" {
		e.add("appservice.listen", ErrMissing)
	} else if host, port, err := net.SplitHostPort(a.Listen); err != nil || strings.ContainsAny(host, " /") {
		e.add("appservice.listen", fmt.Errorf("%w: %q is not host:port", ErrInvalidValue, a.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		e.add("appservice.listen", fmt.Errorf("%w: %q has no valid port", ErrInvalidValue, a.Listen))
	}
	if a.ID == "" {
		e.add("appservice.id", ErrMissing)
	}
	checkLocalpart(e, "appservice.bot_username", a.BotUsername)
	checkLocalpart(e, "appservice.ghost_prefix", a.GhostPrefix)
	checkSecret(e, "appservice.as_token", a.ASToken, true)
	checkSecret(e, "appservice.hs_token", a.HSToken, true)
	for _, t := range []struct{ key, v string }{{"appservice.as_token", a.ASToken}, {"appservice.hs_token", a.HSToken}} {
		if t.v != "" && t.v != PlaceholderGenerate && len(t.v) < MinTokenLength {
			e.add(t.key, fmt.Errorf("%w: at least %d characters (use \"generate\" for a random one)", ErrInvalidValue, MinTokenLength))
		}
	}
	if a.ASToken != "" && a.ASToken != PlaceholderGenerate && a.ASToken == a.HSToken {
		e.add("appservice.hs_token", fmt.Errorf("%w: must differ from appservice.as_token", ErrInvalidValue))
	}
}

func (c *Config) validateDatabase(e *errorList) {
	db := &c.Database
	switch db.Type {
	case DatabaseSQLite:
		if db.URI == "" {
			e.add("database.uri", ErrMissing)
		}
	case DatabasePostgres:
		if !strings.HasPrefix(db.URI, "postgres://") && !strings.HasPrefix(db.URI, "postgresql://") {
			// The URI holds a password: do not echo it.
			e.add("database.uri", fmt.Errorf("%w: postgres needs a postgres:// or postgresql:// URI", ErrInvalidValue))
		}
	default:
		e.add("database.type", fmt.Errorf("%w: %q (use sqlite or postgres)", ErrInvalidValue, db.Type))
	}
	checkInt(e, "database.max_open_conns", db.MaxOpenConns, 0, maxConns)
	checkInt(e, "database.max_idle_conns", db.MaxIdleConns, 0, maxConns)
}

func (c *Config) validateSMS(e *errorList) {
	s := &c.SMS
	checkURL(e, "sms.twilio.api_url", s.Twilio.APIURL)
	for i, cc := range s.AllowedCountries {
		if len(cc) != 2 || phonenumbers.GetCountryCodeForRegion(cc) == 0 {
			e.add(joinIndex("sms.allowed_countries", i), fmt.Errorf("%w: %q is not an ISO 3166 alpha-2 country code with a calling code", ErrInvalidValue, cc))
		}
	}
	if !s.Enabled {
		return
	}
	if s.PublicURL == "" {
		e.add("sms.public_url", ErrMissing)
	} else if checkURL(e, "sms.public_url", s.PublicURL) {
		if u, _ := url.Parse(s.PublicURL); isExampleHost(u.Hostname()) {
			e.add("sms.public_url", fmt.Errorf("%w: %q is the example URL; set the URL Twilio reaches this bridge at", ErrPlaceholder, s.PublicURL))
		}
	}
	switch sid := s.Twilio.AccountSID; {
	case sid == "":
		e.add("sms.twilio.account_sid", ErrMissing)
	case sid == placeholderAccountSID:
		e.add("sms.twilio.account_sid", fmt.Errorf("%w: %q", ErrPlaceholder, sid))
	case !accountSIDPattern.MatchString(sid):
		e.add("sms.twilio.account_sid", fmt.Errorf("%w: a Twilio account SID is AC followed by 32 hex digits", ErrInvalidValue))
	}
	switch tok := s.Twilio.AuthToken; {
	case tok == "":
		e.add("sms.twilio.auth_token", ErrMissing)
	case strings.Trim(tok, "x") == "":
		e.add("sms.twilio.auth_token", fmt.Errorf("%w: %q", ErrPlaceholder, placeholderAuthToken))
	case !alphanumeric(tok):
		// twilio-go refuses such a token on every request (error 21224).
		e.add("sms.twilio.auth_token", fmt.Errorf("%w: a Twilio auth token has only letters and digits", ErrInvalidValue))
	}
	if len(s.Twilio.Numbers) == 0 {
		e.add("sms.twilio.numbers", fmt.Errorf("%w: at least one number to send from", ErrMissing))
	}
	seen := make(map[string]bool, len(s.Twilio.Numbers))
	for i, n := range s.Twilio.Numbers {
		key := joinIndex("sms.twilio.numbers", i)
		if err := checkE164(n); err != nil {
			e.add(key, err)
		} else if seen[n] {
			e.add(key, fmt.Errorf("%w: %q is listed twice", ErrInvalidValue, n))
		}
		seen[n] = true
	}
}

// maxDeviceName is the longest whatsapp.device_name WhatsApp shows in full.
const maxDeviceName = 50

func (c *Config) validateWhatsApp(e *errorList) {
	w := &c.WhatsApp
	switch name := strings.TrimSpace(w.DeviceName); {
	case name == "":
		e.add("whatsapp.device_name", ErrMissing)
	case len([]rune(name)) > maxDeviceName:
		e.add("whatsapp.device_name", fmt.Errorf("%w: at most %d characters", ErrInvalidValue, maxDeviceName))
	}
	switch {
	case w.LoginTimeout <= 0:
		e.add("whatsapp.login_timeout", fmt.Errorf("%w: must be greater than zero", ErrInvalidValue))
	case w.LoginTimeout.Std() < 10*time.Second || w.LoginTimeout.Std() > time.Hour:
		e.add("whatsapp.login_timeout", fmt.Errorf("%w: must be between 10s and 1h", ErrInvalidValue))
	}
	if n := w.Backfill.MaxMessagesPerChat; n < 1 || n > maxBackfillMessages {
		e.add("whatsapp.backfill.max_messages_per_chat", fmt.Errorf("%w: must be between 1 and %d", ErrInvalidValue, maxBackfillMessages))
	}
	if n := w.Backfill.MaxConversations; n < 0 || n > maxBackfillConversations {
		e.add("whatsapp.backfill.max_conversations", fmt.Errorf("%w: must be between 0 and %d", ErrInvalidValue, maxBackfillConversations))
	}
}

// Bounds of whatsapp.backfill: WhatsApp's phone answers an on-demand
// request with at most a few hundred messages, and each opened portal is
// an invitation the user must act on.
const (
	maxBackfillMessages      = 1000
	maxBackfillConversations = 100
)

func (c *Config) validateRetention(e *errorList) {
	checkRetention(e, "retention.default", c.Retention.Default)
	checkRetention(e, "retention.metadata", c.Retention.Metadata)
	for _, k := range sortedKeys(c.Retention.Networks) {
		key := joinKey("retention.networks", k)
		if !slices.Contains(allowedNetworks, k) {
			e.add(key, fmt.Errorf("%w: networks are matrix, whatsapp and sms", ErrUnknownKey))
			continue
		}
		checkRetention(e, key, c.Retention.Networks[k])
	}
}

// checkRetention accepts 0 (keep) or a period between a minute and
// maxRetention.
func checkRetention(e *errorList, key string, d Duration) {
	if d != 0 {
		checkDuration(e, key, d, time.Minute, maxRetention)
	}
}

var prefixPattern = regexp.MustCompile(`^\+[0-9]{1,15}$`)

func (c *Config) validateSafety(e *errorList) {
	s := &c.Safety
	for _, k := range []struct {
		key string
		v   int
	}{
		{"safety.new_chats_per_hour", s.NewChatsPerHour},
		{"safety.sender_messages_per_minute", s.SenderPerMinute},
		{"safety.conversation_messages_per_minute", s.ConversationPerMinute},
		{"safety.inbound_messages_per_minute", s.InboundPerMinute},
		{"safety.high_cost_per_hour", s.HighCostPerHour},
		{"safety.suspend_score", s.SuspendScore},
	} {
		if k.v < 0 {
			e.add(k.key, fmt.Errorf("%w: must not be negative (0 means no limit)", ErrInvalidValue))
		} else {
			checkInt(e, k.key, k.v, 0, maxRate)
		}
	}
	if r := s.AdminRoom; r != "" && (!strings.HasPrefix(r, "!") || len(r) < 2 || strings.ContainsAny(r, " \t\n")) {
		e.add("safety.admin_room", fmt.Errorf("%w: %q is not a room ID (like !abc:example.org)", ErrInvalidValue, r))
	}
	if s.SMSSegmentInterval < 0 {
		e.add("safety.sms_segment_interval", fmt.Errorf("%w: must not be negative (0 means no pacing)", ErrInvalidValue))
	} else {
		checkDuration(e, "safety.sms_segment_interval", s.SMSSegmentInterval, 0, maxSegmentInterval)
	}
	for _, n := range sortedKeys(s.SMSNumberIntervals) {
		key := joinKey("safety.sms_number_intervals", n)
		if err := checkE164(n); err != nil {
			e.add(key, err)
		}
		if s.SMSNumberIntervals[n] < 0 {
			e.add(key, fmt.Errorf("%w: must not be negative (0 means no pacing)", ErrInvalidValue))
		} else {
			checkDuration(e, key, s.SMSNumberIntervals[n], 0, maxSegmentInterval)
		}
	}
	for i, p := range s.HighCostPrefixes {
		if !prefixPattern.MatchString(p) {
			e.add(joinIndex("safety.high_cost_prefixes", i), fmt.Errorf("%w: %q is not an E.164 prefix (+ and the first digits, like +44 or +882)", ErrInvalidValue, p))
		}
	}
	if s.SuspendScore > 0 && s.SignalWindow <= 0 {
		e.add("safety.signal_window", fmt.Errorf("%w: must be greater than zero when safety.suspend_score is set", ErrInvalidValue))
	} else if s.SignalWindow != 0 {
		checkDuration(e, "safety.signal_window", s.SignalWindow, time.Minute, maxSignalWindow)
	}
}

func (c *Config) validateDelivery(e *errorList) {
	d := &c.Delivery
	checkInt(e, "delivery.workers", d.Workers, 1, maxWorkers)
	checkInt(e, "delivery.max_attempts", d.MaxAttempts, 1, maxAttempts)
	checkDuration(e, "delivery.retry_base", d.RetryBase, minRetry, maxRetryBase)
	checkDuration(e, "delivery.retry_max", d.RetryMax, minRetry, maxRetryMax)
	checkDuration(e, "delivery.lease", d.Lease, minLease, maxLease)
	checkDuration(e, "delivery.poll_interval", d.PollInterval, minPollInterval, maxPollInterval)
	if d.RetryBase > 0 && d.RetryMax > 0 && d.RetryMax < d.RetryBase {
		e.add("delivery.retry_max", fmt.Errorf("%w: must not be shorter than delivery.retry_base", ErrInvalidValue))
	}
}

// Bounds of numeric keys. Values outside them are refused with the key
// named: a typo like workers: 100000000 would otherwise exhaust memory, and
// poll_interval: 1ns would spin on the database.
const (
	// MinTokenLength is the shortest as_token or hs_token accepted.
	MinTokenLength = 32

	maxConns           = 1000
	maxRate            = 1_000_000
	maxWorkers         = 256
	maxAttempts        = 1000
	minRetry           = 10 * time.Millisecond
	maxRetryBase       = time.Hour
	maxRetryMax        = 24 * time.Hour
	minLease           = 5 * time.Second
	maxLease           = time.Hour
	minPollInterval    = 100 * time.Millisecond
	maxPollInterval    = 5 * time.Minute
	maxSegmentInterval = 10 * time.Minute
	maxSignalWindow    = 365 * day
	maxRetention       = 100 * 365 * day
)

// checkInt refuses v outside [lo, hi].
func checkInt(e *errorList, key string, v, lo, hi int) {
	if v < lo || v > hi {
		e.add(key, fmt.Errorf("%w: %d is outside %d..%d", ErrInvalidValue, v, lo, hi))
	}
}

// checkDuration refuses d outside [lo, hi].
func checkDuration(e *errorList, key string, d Duration, lo, hi time.Duration) {
	if d.Std() < lo || d.Std() > hi {
		e.add(key, fmt.Errorf("%w: %s is outside %s..%s", ErrInvalidValue, d, Duration(lo), Duration(hi)))
	}
}

// checkE164 reports whether s is an SMS number written the way the
// configuration requires: canonical E.164 as [phone.Normalize] returns it
// ("+" and digits), in a country's assigned ranges (as sms.twilio.numbers
// must be, and as SMS's toll-fraud guard requires of every number). The
// error wraps [ErrInvalidPhoneNumber] and phone.ErrInvalid when the number
// cannot be read.
func checkE164(s string) error {
	e164, err := phone.Normalize(s, "")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPhoneNumber, err)
	}
	if e164 != s {
		return fmt.Errorf("%w: %q must be written as %s", ErrInvalidPhoneNumber, s, e164)
	}
	if phone.Region(e164) == "" {
		return fmt.Errorf("%w: %q is in no country's assigned number ranges", ErrInvalidPhoneNumber, s)
	}
	return nil
}

// checkURL validates an absolute http(s) URL and reports whether it is one.
func checkURL(e *errorList, key, raw string) bool {
	if raw == "" {
		e.add(key, ErrMissing)
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		e.add(key, fmt.Errorf("%w: %q is not an http:// or https:// URL", ErrInvalidValue, raw))
		return false
	}
	return true
}

func checkLocalpart(e *errorList, key, v string) {
	switch {
	case v == "":
		e.add(key, ErrMissing)
	case !localpartPattern.MatchString(v):
		e.add(key, fmt.Errorf("%w: %q may only hold a-z, 0-9 and . _ = - / +", ErrInvalidValue, v))
	}
}

// checkSecret rejects the "generate" placeholder and, when required, an
// empty value. The secret itself is never put in the error.
func checkSecret(e *errorList, key, v string, required bool) {
	switch {
	case v == PlaceholderGenerate:
		e.add(key, fmt.Errorf("%w: %q was not replaced; run switchboard once to generate it, or set %s", ErrPlaceholder, PlaceholderGenerate, EnvName(key)))
	case v == "" && required:
		e.add(key, ErrMissing)
	}
}

func isExampleHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, ex := range []string{"example.org", "example.com"} {
		if host == ex || strings.HasSuffix(host, "."+ex) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func alphanumeric(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Warning is a setting that loads but is probably not what the admin
// meant; the daemon logs each at start.
type Warning struct {
	// Key is the dotted path of the setting.
	Key     string
	Message string
}

// Warnings returns the settings of a valid config that deserve a warning:
// "*": admin makes every Matrix user on every server an admin of the
// bridge.
func (c *Config) Warnings() []Warning {
	var ws []Warning
	if c.Permissions["*"] == PermAdmin {
		ws = append(ws, Warning{Key: joinKey("permissions", "*"),
			Message: "every Matrix user on every server is a bridge admin; give admin to your own user IDs instead"})
	}
	return ws
}
