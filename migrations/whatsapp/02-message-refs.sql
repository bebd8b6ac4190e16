-- v1 -> v2: whatsapp: group message senders and reactions, kept across restarts
-- The sender of a contact's message in a group, which WhatsApp needs to
-- quote, react to or mark read that message: chat_id is the connector's
-- opaque chat ID, message_id WhatsApp's message ID, sender_enc the sender's
-- JID (its user part is a phone number) AES-256-GCM encrypted, bound to
-- chat_id and message_id. Metadata: deleted after retention.metadata and
-- with the login.
CREATE TABLE sb_whatsapp_sender (
	chat_id    TEXT   NOT NULL,
	message_id TEXT   NOT NULL,
	sender_enc TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX sb_whatsapp_sender_created_idx ON sb_whatsapp_sender (created_at);

-- A contact's reaction, so that its removal (WhatsApp reacts with nothing)
-- deletes the reaction the bridge delivered: key_hash is a keyed hash of
-- (account, chat, reacting contact, reacted-to message), reaction_id the
-- reaction's WhatsApp message ID. Metadata: deleted after
-- retention.metadata, once removed, and with the login.
CREATE TABLE sb_whatsapp_contact_reaction (
	key_hash    TEXT   PRIMARY KEY,
	chat_id     TEXT   NOT NULL,
	reaction_id TEXT   NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX sb_whatsapp_contact_reaction_chat_idx ON sb_whatsapp_contact_reaction (chat_id);
CREATE INDEX sb_whatsapp_contact_reaction_created_idx ON sb_whatsapp_contact_reaction (created_at);

-- A reaction the bridge sent for a Matrix user, so that removing it, or
-- its retention ending, removes it on WhatsApp after a restart too:
-- reaction_id is the reaction's own WhatsApp message ID (the remote ID the
-- router knows it by), target_id the reacted-to message, sender_enc that
-- message's sender JID AES-256-GCM encrypted, bound to chat_id and
-- reaction_id. Deleted once removed, a day after expires_at, after
-- retention.metadata when it has no expiry, and with the login.
CREATE TABLE sb_whatsapp_own_reaction (
	chat_id     TEXT   NOT NULL,
	reaction_id TEXT   NOT NULL,
	target_id   TEXT   NOT NULL,
	sender_enc  TEXT   NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	PRIMARY KEY (chat_id, reaction_id)
);
CREATE INDEX sb_whatsapp_own_reaction_created_idx ON sb_whatsapp_own_reaction (created_at);
CREATE INDEX sb_whatsapp_own_reaction_expires_idx ON sb_whatsapp_own_reaction (expires_at);
