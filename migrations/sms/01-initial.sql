-- v0 -> v1: sms connector: chats on pool numbers, opt-outs, sent message map
-- One row per SMS chat: a contact reached from one pool number on behalf of
-- one conversation. No phone number is stored in plaintext: contact_enc is
-- AES-256-GCM (key derived from identity.secret), contact_hash and
-- pool_hash are keyed hashes for look-ups. conversation_id is empty for a
-- chat opened by an inbound SMS that no conversation has claimed yet.
CREATE TABLE sb_sms_chat (
	chat_id         TEXT   PRIMARY KEY,
	contact_hash    TEXT   NOT NULL,
	contact_enc     TEXT   NOT NULL,
	pool_hash       TEXT   NOT NULL,
	conversation_id TEXT   NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	-- last_active_at is the last time the bridge sent to the contact on
	-- this chat (or the chat was created): a reply to a pool number shared
	-- by several conversations goes to the most recently active one.
	last_active_at  BIGINT NOT NULL
);
CREATE INDEX sb_sms_chat_route_idx ON sb_sms_chat (contact_hash, pool_hash, last_active_at);
CREATE UNIQUE INDEX sb_sms_chat_conv_idx ON sb_sms_chat (contact_hash, conversation_id) WHERE conversation_id <> '';

-- Contacts that replied STOP (opted_out) or START / HELP (the last keyword
-- is kept). Sending to an opted-out contact is refused.
CREATE TABLE sb_sms_optout (
	contact_hash TEXT    PRIMARY KEY,
	opted_out    BOOLEAN NOT NULL,
	keyword      TEXT    NOT NULL,
	updated_at   BIGINT  NOT NULL
);

-- Messages the bridge sent, by Twilio MessageSid, so status callbacks can
-- be reported to the sender. One delivery may have several parts (bodies
-- over 1600 characters). Rows older than retention.metadata are deleted.
CREATE TABLE sb_sms_sent (
	message_sid     TEXT    PRIMARY KEY,
	delivery_id     TEXT    NOT NULL,
	part            INTEGER NOT NULL,
	chat_id         TEXT    NOT NULL,
	conversation_id TEXT    NOT NULL,
	message_id      TEXT    NOT NULL,
	status          TEXT    NOT NULL,
	created_at      BIGINT  NOT NULL
);
CREATE INDEX sb_sms_sent_delivery_idx ON sb_sms_sent (delivery_id, part);
CREATE INDEX sb_sms_sent_created_idx ON sb_sms_sent (created_at);
