package identity

import (
	"encoding/hex"
	"fmt"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// Vault protects phone numbers at rest: Seal encrypts them (AES-256-GCM)
// and Lookup gives a keyed hash (HMAC-SHA256) to find them by, both keyed
// from identity.secret with HKDF, each with its own key.
type Vault struct {
	lookupKey []byte
	aead      *keyring.AEAD
}

// NewVault derives the vault's keys from the identity secret.
func NewVault(secret []byte) (*Vault, error) {
	k, err := keyring.New(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	return &Vault{lookupKey: k.Key(keyring.IdentityLookup), aead: k.AEAD(keyring.IdentityEncryption)}, nil
}

// Lookup returns the keyed hash of a value (hex), stable for a secret.
func (v *Vault) Lookup(value string) string {
	return hex.EncodeToString(keyring.Sum(v.lookupKey, value))
}

// Seal encrypts value; context binds the ciphertext to where it is stored
// (a row's lookup hash, say) so it cannot be moved to another row.
func (v *Vault) Seal(value, context string) []byte {
	return v.aead.Seal([]byte(value), []byte(context))
}

// Open decrypts what Seal returned for the same context.
func (v *Vault) Open(sealed []byte, context string) (string, error) {
	pt, err := v.aead.Open(sealed, []byte(context))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return string(pt), nil
}
