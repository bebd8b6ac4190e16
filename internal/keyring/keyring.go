// Package keyring owns every key switchboard derives from identity.secret:
// the secret is checked once (New), every label lives in labels.go, and the
// primitives built on the keys are written here once: keyed hashes
// (HMAC-SHA256) in their stored text forms, and sealed values (AES-256-GCM)
// as bytes or text. Every use derives its own key under its own label, so
// a hash or ciphertext made for one column cannot be matched against
// another.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// MinSecretLength is the shortest identity.secret keys are derived from.
const MinSecretLength = 16

var (
	// ErrShortSecret means identity.secret is empty or shorter than
	// MinSecretLength.
	ErrShortSecret = fmt.Errorf("identity.secret is too short (at least %d characters)", MinSecretLength)
	// ErrSealed means a sealed value is truncated, or was sealed with
	// another key or for another place.
	ErrSealed = errors.New("sealed value cannot be opened")
)

// Keyring derives keys from one identity.secret, checked once by New.
type Keyring struct {
	secret []byte
}

// New checks the secret (ErrShortSecret when it is shorter than
// MinSecretLength) and returns its keyring.
func New(secret []byte) (*Keyring, error) {
	if len(secret) < MinSecretLength {
		return nil, ErrShortSecret
	}
	return &Keyring{secret: secret}, nil
}

// Key returns the 32-byte key for label (HKDF-SHA256 of the secret, the
// label as info).
func (k *Keyring) Key(label string) []byte {
	key, err := hkdf.Key(sha256.New, k.secret, nil, label, 32)
	if err != nil { // only for lengths HKDF-SHA256 cannot give; 32 it can
		panic(err)
	}
	return key
}

// AEAD returns the AEAD under the key for label.
func (k *Keyring) AEAD(label string) *AEAD {
	a, err := NewAEAD(k.Key(label))
	if err != nil { // only for a key length AES refuses; 32 it takes
		panic(err)
	}
	return a
}

// Derive returns the 32-byte key for label (HKDF-SHA256 of secret).
func Derive(secret []byte, label string) ([]byte, error) {
	k, err := New(secret)
	if err != nil {
		return nil, err
	}
	return k.Key(label), nil
}

// HMACKey is HMAC-SHA256(secret, label): the older derivation of the
// Matrix ghost key (MatrixGhost), kept because ghost user IDs are
// permanent. Every other key comes from Key.
func HMACKey(secret []byte, label string) []byte {
	return Sum(secret, label)
}

// Sum is HMAC-SHA256 under key of msg as it is (no separators; see MAC).
func Sum(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
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

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Hash is the text form of a look-up hash: MAC of parts, base64url
// without padding.
func Hash(key []byte, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString(MAC(key, parts...))
}

// ShortID is an opaque ID or reference: the first n bytes of the MAC of
// parts, lower-case base32 without padding (n=15 gives 24 characters).
func ShortID(key []byte, n int, parts ...string) string {
	return strings.ToLower(b32.EncodeToString(MAC(key, parts...)[:n]))
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
	k, err := New(secret)
	if err != nil {
		return nil, err
	}
	return k.AEAD(label), nil
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

// SealString is Seal of a text column: plain bound to ad, in standard
// base64.
func (a *AEAD) SealString(plain, ad string) string {
	return base64.StdEncoding.EncodeToString(a.Seal([]byte(plain), []byte(ad)))
}

// OpenString decrypts what SealString returned for the same ad; a value
// that is not base64 is ErrSealed too.
func (a *AEAD) OpenString(sealed, ad string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", errors.Join(ErrSealed, err)
	}
	pt, err := a.Open(raw, []byte(ad))
	if err != nil {
		return "", err
	}
	return string(pt), nil
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
