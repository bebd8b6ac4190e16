package config

import (
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

// Registration builds the appservice registration the homeserver admin
// installs (see [Appservice.Registration]).
//
// With encryption.msc4190 it carries io.element.msc4190 (the bot's device
// is created through the appservice device API) and org.matrix.msc3202
// (whose device masquerading lets the as_token act as that device); with
// encryption.appservice it carries org.matrix.msc3202 (one-time-key
// counts, unused fallback key types and device-list changes in
// transactions). Ephemeral events (MSC2409: typing, receipts, presence,
// to-device events) are always asked for, under the spec's name
// (receive_ephemeral) and the unstable one Synapse reads
// (de.sorunome.msc2409.push_ephemeral).
func (c *Config) Registration() *appservice.Registration {
	reg := c.Appservice.Registration(c.Homeserver.Domain)
	if c.Encryption.Allow {
		reg.MSC4190 = c.Encryption.MSC4190
		reg.MSC3202 = c.Encryption.Appservice || c.Encryption.MSC4190
	}
	return reg
}

// BotUserID returns the Matrix user ID of the bridge bot.
func (c *Config) BotUserID() id.UserID { return c.Appservice.BotUserID(c.Homeserver.Domain) }

// Registration builds the appservice registration the homeserver admin
// installs: the appservice ID, URL and tokens, the bot as sender, and
// exclusive namespaces for the bot and every ghost
// (@<ghost_prefix>…:<domain>), domain being homeserver.domain.
func (a Appservice) Registration(domain string) *appservice.Registration {
	rateLimited := false
	reg := &appservice.Registration{
		ID:                  a.ID,
		URL:                 a.Address,
		AppToken:            a.ASToken,
		ServerToken:         a.HSToken,
		SenderLocalpart:     a.BotUsername,
		RateLimited:         &rateLimited,
		EphemeralEvents:     true,
		SoruEphemeralEvents: true,
	}
	quoted := regexp.QuoteMeta(domain)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(
		"^@"+regexp.QuoteMeta(a.GhostPrefix)+".*:"+quoted+"$"), true)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(
		"^@"+regexp.QuoteMeta(a.BotUsername)+":"+quoted+"$"), true)
	if a.DoublePuppet {
		// Double puppeting: the as_token may act as the domain's users
		// (non-exclusive: they stay the homeserver's own).
		reg.Namespaces.UserIDs.Register(regexp.MustCompile("^@.*:"+quoted+"$"), false)
	}
	return reg
}

// BotUserID returns the Matrix user ID of the bridge bot on domain
// (homeserver.domain).
func (a Appservice) BotUserID(domain string) id.UserID {
	return id.NewUserID(a.BotUsername, domain)
}

// WriteRegistration writes cfg's registration to path as YAML, readable
// only by its owner since it holds both tokens.
func WriteRegistration(cfg *Config, path string) error {
	data, err := yaml.Marshal(cfg.Registration())
	if err != nil {
		return fmt.Errorf("config: encode registration: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("config: write registration: %w", err)
	}
	return nil
}
