package bridge

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// sealer encrypts queue payloads with AES-256-GCM so that no message body is
// ever written to the database in plaintext.
type sealer struct {
	aead cipher.AEAD
}

// newSealer derives the queue key from the bridge secret with HKDF-SHA256.
func newSealer(secret []byte) (*sealer, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("%w: secret is too short", ErrSeal)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "switchboard queue payload v1", 32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce||ciphertext, authenticated together with ad.
func (s *sealer) seal(plaintext, ad []byte) []byte {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(out)
	return s.aead.Seal(out, out, plaintext, ad)
}

func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: payload too short", ErrSeal)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	return pt, nil
}
