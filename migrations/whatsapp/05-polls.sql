-- v4 -> v5: whatsapp: poll options, to match votes to them
-- A poll in a WhatsApp chat (received, or sent by the bridge): WhatsApp
-- votes name options by the SHA-256 of their text, which the bridge turns
-- into option numbers. options_enc is the list of those hashes, in the
-- poll's order, AES-256-GCM encrypted and bound to chat_id and poll_id;
-- the option texts themselves are message content and are never stored.
-- Metadata: deleted after retention.metadata and with the login.
CREATE TABLE sb_whatsapp_poll (
	chat_id     TEXT   NOT NULL,
	poll_id     TEXT   NOT NULL,
	options_enc TEXT   NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (chat_id, poll_id)
);
CREATE INDEX sb_whatsapp_poll_created_idx ON sb_whatsapp_poll (created_at);
