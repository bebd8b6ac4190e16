package whatsapp

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
	"go.mau.fi/whatsmeow/types"
)

// storeKeys protect the contact numbers in whatsmeow's tables (see
// storecrypt.go). They are derived from identity.secret with HKDF-SHA256
// under labels of their own, so nothing stored by whatsmeow can be matched
// against the connector's other hashes.
type storeKeys struct {
	lookup []byte      // keyed hash of Signal address names and chat IDs
	siv    []byte      // synthetic nonce of the deterministic encryption
	aead   cipher.AEAD // AES-256-GCM of JID users
}

// jidUserAD binds a sealed JID user to its use. One value for every
// column: whatsmeow's own SQL compares whatsmeow_lid_map.pn with the
// users of whatsmeow_privacy_tokens and whatsmeow_message_secrets.
const jidUserAD = keyring.WhatsmeowJIDUserAD

func deriveStoreKeys(secret string) (*storeKeys, error) {
	kr, err := keyring.New([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	return &storeKeys{
		lookup: kr.Key(keyring.WhatsmeowStoreLookup),
		siv:    kr.Key(keyring.WhatsmeowStoreSyntheticNonce),
		aead:   kr.AEAD(keyring.WhatsmeowStoreEncryption).GCM(),
	}, nil
}

// hashLen is the length of a keyed hash in hex: HMAC-SHA256, 64 digits.
// Lower-case hex holds neither LIKE wildcard (% _) nor the characters
// whatsmeow splits addresses and JIDs on (: . @).
const hashLen = 2 * sha256.Size

// hash is the keyed hash of s in a domain.
func (k *storeKeys) hash(domain, s string) string {
	return hex.EncodeToString(mac(k.lookup, domain, s))
}

// signalName is the keyed hash of a Signal address name (a JID's
// SignalAddressUser: "number", "lid_1", ...). It is the same in
// whatsmeow_sessions, whatsmeow_identity_keys and whatsmeow_sender_keys,
// so whatsmeow's MigratePNToLID can still rename one to another.
func (k *storeKeys) signalName(name string) string { return k.hash("signal name", name) }

// address maps a Signal address "name:device" to "hash(name):device": the
// device stays readable so whatsmeow's "name:%" prefix deletes still match.
func (k *storeKeys) address(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return k.signalName(addr)
	}
	return k.signalName(addr[:i]) + addr[i:]
}

// sealUser encrypts a JID user deterministically (AES-GCM with the nonce
// an HMAC of the plaintext, a synthetic IV), so that the same user always
// gives the same text and whatsmeow's equality look-ups and joins work.
// The output is lower-case hex.
func (k *storeKeys) sealUser(user string) string {
	nonce := mac(k.siv, jidUserAD, user)[:k.aead.NonceSize()]
	out := make([]byte, len(nonce), len(nonce)+len(user)+k.aead.Overhead())
	copy(out, nonce)
	return hex.EncodeToString(k.aead.Seal(out, nonce, []byte(user), []byte(jidUserAD)))
}

func (k *storeKeys) openUser(sealed string) (string, error) {
	if !isHex(sealed) { // lower case only: one text per sealed user
		return "", ErrStoredJID
	}
	raw, err := hex.DecodeString(sealed)
	n := k.aead.NonceSize()
	if err != nil || len(raw) < n+k.aead.Overhead() {
		return "", ErrStoredJID
	}
	pt, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(jidUserAD))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrStoredJID, err)
	}
	// The nonce is the plaintext's HMAC: a sealed user has exactly one form.
	if !hmac.Equal(raw[:n], mac(k.siv, jidUserAD, string(pt))[:n]) {
		return "", ErrStoredJID
	}
	return string(pt), nil
}

// isSealedUser reports whether a stored JID user has the form of
// sealUser's output (hex, at least a nonce and a tag long). Clear users
// (digits, "digits-digits" of old groups) never have it.
func (k *storeKeys) isSealedUser(user string) bool {
	return len(user) >= 2*(k.aead.NonceSize()+k.aead.Overhead()) && isHex(user)
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clearServer reports whether a JID's user is kept in clear: LIDs are
// WhatsApp's opaque per-account IDs, not numbers, and whatsmeow's SQL
// looks them up in whatsmeow_lid_map by their text.
func clearServer(server string) bool {
	return server == types.HiddenUserServer || server == types.HostedLIDServer
}

// sealJID encrypts the user of a JID that may carry a number (phone
// numbers; groups made by old clients are "creator number-time@g.us"),
// keeping server, agent and device.
func (k *storeKeys) sealJID(jid types.JID) types.JID {
	if jid.User == "" || clearServer(jid.Server) {
		return jid
	}
	jid.User = k.sealUser(jid.User)
	return jid
}

// openJID reverses sealJID.
func (k *storeKeys) openJID(jid types.JID) (types.JID, error) {
	if jid.User == "" || clearServer(jid.Server) {
		return jid, nil
	}
	user, err := k.openUser(jid.User)
	if err != nil {
		return types.JID{}, err
	}
	jid.User = user
	return jid, nil
}
