package config

import (
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

// Registration builds the appservice registration the homeserver admin
// installs: the appservice ID, URL and tokens, the bot as sender, and
// exclusive namespaces for the bot and every ghost
// (@<ghost_prefix>…:<domain>).
func (c *Config) Registration() *appservice.Registration {
	rateLimited := false
	reg := &appservice.Registration{
		ID:                  c.Appservice.ID,
		URL:                 c.Appservice.Address,
		AppToken:            c.Appservice.ASToken,
		ServerToken:         c.Appservice.HSToken,
		SenderLocalpart:     c.Appservice.BotUsername,
		RateLimited:         &rateLimited,
		EphemeralEvents:     true,
		SoruEphemeralEvents: true,
	}
	domain := regexp.QuoteMeta(c.Homeserver.Domain)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(
		"^@"+regexp.QuoteMeta(c.Appservice.GhostPrefix)+".*:"+domain+"$"), true)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(
		"^@"+regexp.QuoteMeta(c.Appservice.BotUsername)+":"+domain+"$"), true)
	return reg
}

// BotUserID returns the Matrix user ID of the bridge bot.
func (c *Config) BotUserID() id.UserID {
	return id.NewUserID(c.Appservice.BotUsername, c.Homeserver.Domain)
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
