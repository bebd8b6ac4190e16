package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Vault protects phone numbers at rest: Seal encrypts them (AES-256-GCM)
// and Lookup gives a keyed hash (HMAC-SHA256) to find them by, both keyed
// from identity.secret with HKDF, each with its own key.
type Vault struct {
	lookupKey []byte
	aead      cipher.AEAD
}

// NewVault derives the vault's keys from the identity secret.
func NewVault(secret []byte) (*Vault, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("%w: identity.secret is too short", ErrInvalidSecret)
	}
	lookup, err := hkdf.Key(sha256.New, secret, nil, "switchboard identity lookup v1", 32)
	if err != nil {
		return nil, err
	}
	enc, err := hkdf.Key(sha256.New, secret, nil, "switchboard identity encryption v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Vault{lookupKey: lookup, aead: aead}, nil
}

// Lookup returns the keyed hash of a value (hex), stable for a secret.
func (v *Vault) Lookup(value string) string {
	mac := hmac.New(sha256.New, v.lookupKey)
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))
}

// Seal encrypts value; context binds the ciphertext to where it is stored
// (a row's lookup hash, say) so it cannot be moved to another row.
func (v *Vault) Seal(value, context string) []byte {
	nonce := make([]byte, v.aead.NonceSize(), v.aead.NonceSize()+len(value)+v.aead.Overhead())
	_, _ = rand.Read(nonce)
	return v.aead.Seal(nonce, nonce, []byte(value), []byte(context))
}

// Open decrypts what Seal returned for the same context.
func (v *Vault) Open(sealed []byte, context string) (string, error) {
	n := v.aead.NonceSize()
	if len(sealed) < n+v.aead.Overhead() {
		return "", fmt.Errorf("%w: too short", ErrSealed)
	}
	pt, err := v.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return string(pt), nil
}
