package bridge

import (
	"fmt"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// sealer holds the router's keys, derived from the bridge secret with
// HKDF-SHA256: it encrypts queue payloads with AES-256-GCM so that no
// message body is ever written to the database in plaintext, and hashes
// the source IDs of expired messages (sb_seen) so that no raw ID outlives
// its message.
type sealer struct {
	aead    *keyring.AEAD
	seenKey []byte
}

// newSealer derives the queue and seen-hash keys from the bridge secret.
func newSealer(secret []byte) (*sealer, error) {
	k, err := keyring.New(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	return &sealer{aead: k.AEAD(keyring.QueuePayload), seenKey: k.Key(keyring.SeenSourceID)}, nil
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

// seenHash is the sb_seen key of a message copy: a keyed hash of where it
// lives and its remote ID, which cannot be reversed or matched without
// the secret.
func (s *sealer) seenHash(leg Leg, remote RemoteID) []byte {
	return keyring.MAC(s.seenKey, string(leg.Network), string(leg.Chat), string(remote))
}
