package sms

import (
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// keys holds the secrets derived from identity.secret with HKDF-SHA256.
// Each use has its own key so that a hash in one column cannot be matched
// against another.
type keys struct {
	lookup []byte // contact_hash, pool_hash
	chat   []byte // ChatID
	people *identity.Pseudonyms
	log    []byte // hashes in log lines
	aead   *keyring.AEAD
	spool  *keyring.AEAD // the spool of inbound webhooks
}

func deriveKeys(secret string) (*keys, error) {
	if len(secret) < keyring.MinSecretLength {
		return nil, errors.New("sms: identity.secret is too short")
	}
	label := func(use string) string { return "switchboard sms " + use + " v1" }
	k := &keys{}
	err := keyring.DeriveAll([]byte(secret), map[string]*[]byte{
		label("lookup"): &k.lookup, label("chat"): &k.chat, label("log"): &k.log,
	})
	if err != nil {
		return nil, err
	}
	if k.people, err = identity.NewPseudonyms([]byte(secret)); err != nil {
		return nil, err
	}
	if k.aead, err = keyring.DeriveAEAD([]byte(secret), label("number encryption")); err != nil {
		return nil, err
	}
	if k.spool, err = keyring.DeriveAEAD([]byte(secret), label("spool encryption")); err != nil {
		return nil, err
	}
	return k, nil
}

var mac = keyring.MAC

func (k *keys) contactHash(e164 string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.lookup, "contact", e164))
}

func (k *keys) poolHash(e164 string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.lookup, "pool", e164))
}

// chatID derives the opaque ChatID of (contact, pool number, conversation).
// The conversation is part of it because the router gives each chat to one
// conversation, and a pool number can be shared by several (see ChatFor).
func (k *keys) chatID(contact, pool, conv string) string {
	return "sms_" + strings.ToLower(b32.EncodeToString(mac(k.chat, contact, pool, conv)[:15]))
}

// pseudonym returns the stable sender ID and display name of a contact:
// the identity pseudonym of the number, the same the contact has on every
// phone network.
func (k *keys) pseudonym(contact string) (id, name string) {
	p := k.people.Phone(contact)
	return string(p.ID), p.DisplayName
}

// logRef is a short keyed hash to correlate log lines without the number.
func (k *keys) logRef(s string) string {
	return strings.ToLower(b32.EncodeToString(mac(k.log, s)[:5]))
}

// seal encrypts a phone number, bound to its lookup hash.
func (k *keys) seal(number, hash string) string {
	return base64.StdEncoding.EncodeToString(k.aead.Seal([]byte(number), []byte(hash)))
}

func (k *keys) open(sealed, hash string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", errors.New("sms: stored number is corrupt")
	}
	pt, err := k.aead.Open(raw, []byte(hash))
	if err != nil {
		return "", fmt.Errorf("sms: stored number cannot be decrypted (identity.secret changed?): %w", err)
	}
	return string(pt), nil
}
