package bridge

import (
	"fmt"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// sealer encrypts queue payloads with AES-256-GCM so that no message body is
// ever written to the database in plaintext.
type sealer struct {
	aead *keyring.AEAD
}

// newSealer derives the queue key from the bridge secret with HKDF-SHA256.
func newSealer(secret []byte) (*sealer, error) {
	aead, err := keyring.DeriveAEAD(secret, "switchboard queue payload v1")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce||ciphertext, authenticated together with ad.
func (s *sealer) seal(plaintext, ad []byte) []byte {
	return s.aead.Seal(plaintext, ad)
}

func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	pt, err := s.aead.Open(sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	return pt, nil
}
