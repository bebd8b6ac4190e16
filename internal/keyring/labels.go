package keyring

// Every label a key is derived under, and every domain a keyed hash or a
// sealed value is bound to, is here and nowhere else. The text of a label
// is part of every stored hash, ciphertext, chat ID, pseudonym and ghost
// user ID made with it: changing one makes existing databases unreadable
// and renames people, so a label is never edited, only replaced by a new
// one ("... v2") with a migration. TestLabelsUnique checks they differ;
// the golden vectors (golden_test.go and one per package) check that each
// still gives the same key.
const (
	// QueuePayload seals the router's queued payloads (bridge/seal.go).
	QueuePayload = "switchboard queue payload v1"
	// SeenSourceID keys the sb_seen hashes of expired messages' IDs.
	SeenSourceID = "switchboard seen source id v1"

	// IdentityLookup keys the look-up hashes of linked numbers and codes.
	IdentityLookup = "switchboard identity lookup v1"
	// IdentityEncryption seals linked and pending numbers.
	IdentityEncryption = "switchboard identity encryption v1"
	// IdentityPseudonym keys the ph_ pseudonyms of phone contacts, shared
	// by every phone network.
	IdentityPseudonym = "switchboard identity pseudonym v1"

	// SMSLookup keys contact_hash, pool_hash and keyword message hashes.
	SMSLookup = "switchboard sms lookup v1"
	// SMSChat keys the sms_ chat IDs.
	SMSChat = "switchboard sms chat v1"
	// SMSLog keys the short references to numbers in log lines.
	SMSLog = "switchboard sms log v1"
	// SMSNumberEncryption seals contact numbers in sb_sms_chat.
	SMSNumberEncryption = "switchboard sms number encryption v1"
	// SMSSpoolEncryption seals the spool of inbound webhooks.
	SMSSpoolEncryption = "switchboard sms spool encryption v1"
	// SMSSpoolAD binds each spooled webhook to the spool.
	SMSSpoolAD = "switchboard sms spool v1"

	// WhatsAppLookup keys the look-up hashes of numbers.
	WhatsAppLookup = "switchboard whatsapp lookup v1"
	// WhatsAppChat keys the wa_ chat IDs.
	WhatsAppChat = "switchboard whatsapp chat v1"
	// WhatsAppLog keys the short references to JIDs in log lines.
	WhatsAppLog = "switchboard whatsapp log v1"
	// WhatsAppMessageID keys the bridge's own WhatsApp message IDs.
	WhatsAppMessageID = "switchboard whatsapp message id v1"
	// WhatsAppReaction keys the stored keys of contacts' reactions.
	WhatsAppReaction = "switchboard whatsapp reaction v1"
	// WhatsAppJIDEncryption seals JIDs in the connector's tables.
	WhatsAppJIDEncryption = "switchboard whatsapp jid encryption v1"

	// WhatsmeowStoreLookup keys the hashes of Signal addresses in
	// whatsmeow's tables.
	WhatsmeowStoreLookup = "switchboard whatsmeow store lookup v1"
	// WhatsmeowStoreSyntheticNonce keys the synthetic nonces of the
	// deterministic sealing of JID users.
	WhatsmeowStoreSyntheticNonce = "switchboard whatsmeow store synthetic nonce v1"
	// WhatsmeowStoreEncryption seals JID users in whatsmeow's tables.
	WhatsmeowStoreEncryption = "switchboard whatsmeow store encryption v1"
	// WhatsmeowJIDUserAD binds a sealed JID user to its use (one value for
	// every column, so whatsmeow's joins still match).
	WhatsmeowJIDUserAD = "switchboard whatsmeow jid user v1"

	// MatrixGhost keys the ghost localparts. Unlike the others it is
	// derived with HMACKey, not HKDF: ghosts are Matrix users that already
	// exist, so their derivation stays as it was.
	MatrixGhost = "switchboard/matrix/ghost/v1"
	// MatrixCrossSigningEncryption seals the bot's cross-signing seeds and
	// recovery key in sb_matrix_cross_signing.
	MatrixCrossSigningEncryption = "switchboard matrix cross-signing encryption v1"
)

// Labels returns every label above.
func Labels() []string {
	return []string{
		QueuePayload, SeenSourceID,
		IdentityLookup, IdentityEncryption, IdentityPseudonym,
		SMSLookup, SMSChat, SMSLog, SMSNumberEncryption, SMSSpoolEncryption, SMSSpoolAD,
		WhatsAppLookup, WhatsAppChat, WhatsAppLog, WhatsAppMessageID, WhatsAppReaction, WhatsAppJIDEncryption,
		WhatsmeowStoreLookup, WhatsmeowStoreSyntheticNonce, WhatsmeowStoreEncryption, WhatsmeowJIDUserAD,
		MatrixGhost, MatrixCrossSigningEncryption,
	}
}
