package sms

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

	"github.com/switchboard-bridge/switchboard/identity"
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
	aead   cipher.AEAD
}

func deriveKeys(secret string) (*keys, error) {
	if len(secret) < 16 {
		return nil, errors.New("sms: identity.secret is too short")
	}
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secret), nil, "switchboard sms "+info+" v1", 32)
	}
	k := &keys{}
	var err error
	for _, p := range []struct {
		dst  *[]byte
		info string
	}{{&k.lookup, "lookup"}, {&k.chat, "chat"}, {&k.log, "log"}} {
		if *p.dst, err = derive(p.info); err != nil {
			return nil, err
		}
	}
	if k.people, err = identity.NewPseudonyms([]byte(secret)); err != nil {
		return nil, err
	}
	enc, err := derive("number encryption")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return k, nil
}

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

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
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(number)+k.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, []byte(number), []byte(hash)))
}

func (k *keys) open(sealed, hash string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	n := k.aead.NonceSize()
	if err != nil || len(raw) < n+k.aead.Overhead() {
		return "", errors.New("sms: stored number is corrupt")
	}
	pt, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(hash))
	if err != nil {
		return "", fmt.Errorf("sms: stored number cannot be decrypted (identity.secret changed?): %w", err)
	}
	return string(pt), nil
}
