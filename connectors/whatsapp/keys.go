package whatsapp

import (
	"fmt"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// keys holds the secrets derived from identity.secret (see
// internal/keyring), one per use so a hash in one column cannot be matched
// against another.
type keys struct {
	lookup []byte // contact_hash, number_hash
	chat   []byte // ChatID
	log    []byte // hashes in log lines
	msgID  []byte // the bridge's own message IDs (see Connector.ownID)
	react  []byte // key_hash of contacts' reactions (sb_whatsapp_contact_reaction)
	aead   *keyring.AEAD
}

func deriveKeys(secret string) (*keys, error) {
	kr, err := keyring.New([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	return &keys{
		lookup: kr.Key(keyring.WhatsAppLookup),
		chat:   kr.Key(keyring.WhatsAppChat),
		log:    kr.Key(keyring.WhatsAppLog),
		msgID:  kr.Key(keyring.WhatsAppMessageID),
		react:  kr.Key(keyring.WhatsAppReaction),
		aead:   kr.AEAD(keyring.WhatsAppJIDEncryption),
	}, nil
}

var mac = keyring.MAC

// numberHash is the look-up hash of an E.164 number (contact_hash,
// number_hash).
func (k *keys) numberHash(e164 string) string { return keyring.Hash(k.lookup, "number", e164) }

// chatID is the opaque ChatID of a chat JID seen by one account.
func (k *keys) chatID(account, jid string) string {
	return "wa_" + keyring.ShortID(k.chat, 15, account, jid)
}

// reactionKey is the stored key of a contact's reaction: a keyed hash of
// the account and the (chat, sender, target) key the connector uses.
func (k *keys) reactionKey(account, key string) string { return keyring.Hash(k.react, account, key) }

// logRef is a short keyed hash to correlate log lines without the JID.
func (k *keys) logRef(s string) string { return keyring.ShortID(k.log, 5, s) }

// seal encrypts a JID, bound to what it is stored with (ad).
func (k *keys) seal(plain, ad string) string { return k.aead.SealString(plain, ad) }

func (k *keys) open(sealed, ad string) (string, error) {
	plain, err := k.aead.OpenString(sealed, ad)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrStoredJID, err)
	}
	return plain, nil
}
