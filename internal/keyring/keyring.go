// Package keyring derives switchboard's keys from identity.secret and
// holds the two primitives built on them: keyed hashes (HMAC-SHA256) and
// sealed values (AES-256-GCM). Every use derives its own key under its own
// label, so a hash or ciphertext made for one column cannot be matched
// against another.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// MinSecretLength is the shortest identity.secret keys are derived from.
const MinSecretLength = 16

var (
	// ErrShortSecret means identity.secret is shorter than MinSecretLength.
	ErrShortSecret = errors.New("identity.secret is too short")
	// ErrSealed means a sealed value is truncated, or was sealed with
	// another key or for another place.
	ErrSealed = errors.New("sealed value cannot be opened")
)

// Derive returns the 32-byte key for label (HKDF-SHA256 of secret).
func Derive(secret []byte, label string) ([]byte, error) {
	if len(secret) < MinSecretLength {
		return nil, ErrShortSecret
	}
	return hkdf.Key(sha256.New, secret, nil, label, 32)
}

// DeriveAll derives one key per label into the given destinations.
func DeriveAll(secret []byte, keys map[string]*[]byte) error {
	for label, dst := range keys {
		k, err := Derive(secret, label)
		if err != nil {
			return err
		}
		*dst = k
	}
	return nil
}

// MAC is HMAC-SHA256 under key over parts, each followed by a zero byte so
// that ("ab", "c") and ("a", "bc") differ.
func MAC(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// AEAD seals values with AES-256-GCM and a random nonce.
type AEAD struct {
	gcm cipher.AEAD
}

// NewAEAD returns the AEAD for a 32-byte key.
func NewAEAD(key []byte) (*AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &AEAD{gcm: gcm}, nil
}

// DeriveAEAD is NewAEAD of the key Derive gives for label.
func DeriveAEAD(secret []byte, label string) (*AEAD, error) {
	key, err := Derive(secret, label)
	if err != nil {
		return nil, err
	}
	return NewAEAD(key)
}

// GCM is the underlying cipher, for deterministic constructions that pick
// their own nonce.
func (a *AEAD) GCM() cipher.AEAD { return a.gcm }

// Seal encrypts plain, bound to ad (where the value is stored), and returns
// nonce || ciphertext.
func (a *AEAD) Seal(plain, ad []byte) []byte {
	n := a.gcm.NonceSize()
	nonce := make([]byte, n, n+len(plain)+a.gcm.Overhead())
	_, _ = rand.Read(nonce)
	return a.gcm.Seal(nonce, nonce, plain, ad)
}

// Open decrypts what Seal returned for the same ad.
func (a *AEAD) Open(sealed, ad []byte) ([]byte, error) {
	n := a.gcm.NonceSize()
	if len(sealed) < n+a.gcm.Overhead() {
		return nil, ErrSealed
	}
	pt, err := a.gcm.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, errors.Join(ErrSealed, err)
	}
	return pt, nil
}
