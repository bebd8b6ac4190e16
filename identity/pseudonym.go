package identity

import (
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// PseudonymPrefix starts every phone contact's pseudonymous user ID.
const PseudonymPrefix = "ph_"

var pseudoEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Pseudonyms derives the stable, opaque names phone contacts appear under.
// The same number gets the same pseudonym on every phone network (SMS,
// WhatsApp), so a contact reached on both is one participant, not two.
type Pseudonyms struct {
	key []byte
}

// NewPseudonyms derives the pseudonym key from identity.secret.
func NewPseudonyms(secret []byte) (*Pseudonyms, error) {
	k, err := keyring.New(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	return &Pseudonyms{key: k.Key(keyring.IdentityPseudonym)}, nil
}

// Phone returns the contact behind an E.164 number as a bridge.Sender: ID is
// PseudonymPrefix plus a keyed hash, DisplayName "Contact " plus its first
// characters. Neither contains a digit of the number.
func (p *Pseudonyms) Phone(e164 string) bridge.Sender {
	s := strings.ToLower(pseudoEncoding.EncodeToString(keyring.Sum(p.key, "phone\x00"+e164)[:15]))
	return bridge.Sender{ID: bridge.UserID(PseudonymPrefix + s), DisplayName: "Contact " + s[:6]}
}

// IsPhonePseudonym reports whether a sender ID is a phone contact's
// pseudonym (from Phone).
func IsPhonePseudonym(id bridge.UserID) bool {
	return strings.HasPrefix(string(id), PseudonymPrefix)
}
