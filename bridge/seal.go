package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"

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
	// macs pools HMAC states keyed with seenKey (one per accept otherwise).
	macs sync.Pool
}

// newSealer derives the queue and seen-hash keys from the bridge secret.
func newSealer(secret []byte) (*sealer, error) {
	k, err := keyring.New(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	s := &sealer{aead: k.AEAD(keyring.QueuePayload), seenKey: k.Key(keyring.SeenSourceID)}
	s.macs.New = func() any { return hmac.New(sha256.New, s.seenKey) }
	return s, nil
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
// It equals keyring.MAC(seenKey, network, chat, remote), computed with a
// pooled HMAC state and one write.
func (s *sealer) seenHash(leg Leg, remote RemoteID) []byte {
	var buf [256]byte
	in := append(buf[:0], leg.Network...)
	in = append(in, 0)
	in = append(in, leg.Chat...)
	in = append(in, 0)
	in = append(in, remote...)
	in = append(in, 0)
	h := s.macs.Get().(hash.Hash)
	h.Write(in)
	sum := h.Sum(make([]byte, 0, sha256.Size))
	h.Reset()
	s.macs.Put(h)
	return sum
}
