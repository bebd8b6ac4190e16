package config

import (
	"crypto/subtle"
	"fmt"
)

// ProvisioningDisabled as provisioning.shared_secret turns the shared-secret
// authentication of the provisioning API off (Matrix OpenID tokens still
// work).
const ProvisioningDisabled = "-"

// MinProvisioningSecretLength is the shortest provisioning.shared_secret
// accepted.
const MinProvisioningSecretLength = 32

// Provisioning configures the provisioning API
// (/_switchboard/provision/v1/, see docs/provisioning.md).
type Provisioning struct {
	// SharedSecret authenticates trusted clients acting for a user
	// ("Authorization: Bearer <secret>" and ?user_id=). Secret; "generate"
	// is replaced on first run (and on upgrade of a file without it);
	// ProvisioningDisabled or "" turns it off.
	SharedSecret string `yaml:"shared_secret"`
}

// SecretEnabled reports whether the shared-secret authentication is on.
func (p Provisioning) SecretEnabled() bool {
	return p.SharedSecret != "" && p.SharedSecret != ProvisioningDisabled && p.SharedSecret != PlaceholderGenerate
}

// validateProvisioning checks provisioning.shared_secret: not the
// placeholder, long enough, and not one of the appservice tokens (whoever
// holds those must not thereby act for every user).
func (c *Config) validateProvisioning(e *errorList) {
	const key = "provisioning.shared_secret"
	s := c.Provisioning.SharedSecret
	switch {
	case s == "" || s == ProvisioningDisabled:
	case s == PlaceholderGenerate:
		checkSecret(e, key, s, false)
	case len(s) < MinProvisioningSecretLength:
		e.add(key, fmt.Errorf("%w: at least %d characters (use \"generate\" for a random one, or \"-\" to turn it off)", ErrInvalidValue, MinProvisioningSecretLength))
	case subtle.ConstantTimeCompare([]byte(s), []byte(c.Appservice.ASToken)) == 1 ||
		subtle.ConstantTimeCompare([]byte(s), []byte(c.Appservice.HSToken)) == 1:
		e.add(key, fmt.Errorf("%w: must differ from appservice.as_token and appservice.hs_token", ErrInvalidValue))
	}
}
