package sms

import (
	"fmt"

	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// keys holds the secrets derived from identity.secret (see
// internal/keyring). Each use has its own key so that a hash in one column
// cannot be matched against another.
type keys struct {
	lookup []byte // contact_hash, pool_hash
	chat   []byte // ChatID
	people *identity.Pseudonyms
	log    []byte // hashes in log lines
	aead   *keyring.AEAD
	spool  *keyring.AEAD // the spool of inbound webhooks
}

func deriveKeys(secret string) (*keys, error) {
	kr, err := keyring.New([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	people, err := identity.NewPseudonyms([]byte(secret))
	if err != nil {
		return nil, err
	}
	return &keys{
		lookup: kr.Key(keyring.SMSLookup),
		chat:   kr.Key(keyring.SMSChat),
		people: people,
		log:    kr.Key(keyring.SMSLog),
		aead:   kr.AEAD(keyring.SMSNumberEncryption),
		spool:  kr.AEAD(keyring.SMSSpoolEncryption),
	}, nil
}

// mac is keyring.MAC, for the hashes made outside this file (keywords.go).
var mac = keyring.MAC

func (k *keys) contactHash(e164 string) string { return keyring.Hash(k.lookup, "contact", e164) }

func (k *keys) poolHash(e164 string) string { return keyring.Hash(k.lookup, "pool", e164) }

// chatID derives the opaque ChatID of (contact, pool number, conversation).
// The conversation is part of it because the router gives each chat to one
// conversation, and a pool number can be shared by several (see ChatFor).
func (k *keys) chatID(contact, pool, conv string) string {
	return "sms_" + keyring.ShortID(k.chat, 15, contact, pool, conv)
}

// pseudonym returns the stable sender ID and display name of a contact:
// the identity pseudonym of the number, the same the contact has on every
// phone network.
func (k *keys) pseudonym(contact string) (id, name string) {
	p := k.people.Phone(contact)
	return string(p.ID), p.DisplayName
}

// logRef is a short keyed hash to correlate log lines without the number.
func (k *keys) logRef(s string) string { return keyring.ShortID(k.log, 5, s) }

// seal encrypts a phone number, bound to its lookup hash.
func (k *keys) seal(number, hash string) string { return k.aead.SealString(number, hash) }

func (k *keys) open(sealed, hash string) (string, error) {
	number, err := k.aead.OpenString(sealed, hash)
	if err != nil {
		return "", fmt.Errorf("sms: stored number cannot be opened (corrupt, or identity.secret changed?): %w", err)
	}
	return number, nil
}
