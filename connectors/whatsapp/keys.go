package whatsapp

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

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// keys holds the secrets derived from identity.secret with HKDF-SHA256,
// one per use so a hash in one column cannot be matched against another.
type keys struct {
	lookup []byte // contact_hash, number_hash
	chat   []byte // ChatID
	log    []byte // hashes in log lines
	msgID  []byte // the bridge's own message IDs (see Connector.ownID)
	aead   cipher.AEAD
}

func deriveKeys(secret string) (*keys, error) {
	if len(secret) < 16 {
		return nil, errors.New("whatsapp: identity.secret is too short")
	}
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secret), nil, "switchboard whatsapp "+info+" v1", 32)
	}
	k := &keys{}
	var err error
	for _, p := range []struct {
		dst  *[]byte
		info string
	}{{&k.lookup, "lookup"}, {&k.chat, "chat"}, {&k.log, "log"}, {&k.msgID, "message id"}} {
		if *p.dst, err = derive(p.info); err != nil {
			return nil, err
		}
	}
	enc, err := derive("jid encryption")
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

// numberHash is the look-up hash of an E.164 number (contact_hash,
// number_hash).
func (k *keys) numberHash(e164 string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.lookup, "number", e164))
}

// chatID is the opaque ChatID of a chat JID seen by one account.
func (k *keys) chatID(account, jid string) string {
	return "wa_" + strings.ToLower(b32.EncodeToString(mac(k.chat, account, jid)[:15]))
}

// logRef is a short keyed hash to correlate log lines without the JID.
func (k *keys) logRef(s string) string {
	return strings.ToLower(b32.EncodeToString(mac(k.log, s)[:5]))
}

// seal encrypts a JID, bound to what it is stored with (ad).
func (k *keys) seal(plain, ad string) string {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, []byte(plain), []byte(ad)))
}

func (k *keys) open(sealed, ad string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	n := k.aead.NonceSize()
	if err != nil || len(raw) < n+k.aead.Overhead() {
		return "", ErrStoredJID
	}
	pt, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(ad))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrStoredJID, err)
	}
	return string(pt), nil
}
