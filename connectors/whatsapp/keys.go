package whatsapp

import (
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// keys holds the secrets derived from identity.secret with HKDF-SHA256,
// one per use so a hash in one column cannot be matched against another.
type keys struct {
	lookup []byte // contact_hash, number_hash
	chat   []byte // ChatID
	log    []byte // hashes in log lines
	msgID  []byte // the bridge's own message IDs (see Connector.ownID)
	react  []byte // key_hash of contacts' reactions (sb_whatsapp_contact_reaction)
	aead   *keyring.AEAD
}

func deriveKeys(secret string) (*keys, error) {
	if len(secret) < keyring.MinSecretLength {
		return nil, errors.New("whatsapp: identity.secret is too short")
	}
	label := func(use string) string { return "switchboard whatsapp " + use + " v1" }
	k := &keys{}
	err := keyring.DeriveAll([]byte(secret), map[string]*[]byte{
		label("lookup"): &k.lookup, label("chat"): &k.chat, label("log"): &k.log, label("message id"): &k.msgID,
		label("reaction"): &k.react,
	})
	if err != nil {
		return nil, err
	}
	if k.aead, err = keyring.DeriveAEAD([]byte(secret), label("jid encryption")); err != nil {
		return nil, err
	}
	return k, nil
}

var mac = keyring.MAC

// numberHash is the look-up hash of an E.164 number (contact_hash,
// number_hash).
func (k *keys) numberHash(e164 string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.lookup, "number", e164))
}

// chatID is the opaque ChatID of a chat JID seen by one account.
func (k *keys) chatID(account, jid string) string {
	return "wa_" + strings.ToLower(b32.EncodeToString(mac(k.chat, account, jid)[:15]))
}

// reactionKey is the stored key of a contact's reaction: a keyed hash of
// the account and the (chat, sender, target) key the connector uses.
func (k *keys) reactionKey(account, key string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.react, account, key))
}

// logRef is a short keyed hash to correlate log lines without the JID.
func (k *keys) logRef(s string) string {
	return strings.ToLower(b32.EncodeToString(mac(k.log, s)[:5]))
}

// seal encrypts a JID, bound to what it is stored with (ad).
func (k *keys) seal(plain, ad string) string {
	return base64.StdEncoding.EncodeToString(k.aead.Seal([]byte(plain), []byte(ad)))
}

func (k *keys) open(sealed, ad string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", ErrStoredJID
	}
	pt, err := k.aead.Open(raw, []byte(ad))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrStoredJID, err)
	}
	return string(pt), nil
}
