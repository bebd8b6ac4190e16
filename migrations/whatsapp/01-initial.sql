-- v0 -> v1: whatsapp connector: logins, chats, reachability cache
-- One row per WhatsApp login. account is the Matrix user ID of the user
-- who logged in, or "relay" for the bridge-owned relay account. The
-- login's own JID (its user part is a phone number) is stored AES-256-GCM
-- encrypted (key derived from identity.secret); whatsmeow's session store
-- is keyed by it. state is the last known state (ok, logged_out, banned,
-- outdated) for /health and whoami.
CREATE TABLE sb_whatsapp_login (
	account    TEXT   PRIMARY KEY,
	jid_enc    TEXT   NOT NULL,
	state      TEXT   NOT NULL DEFAULT 'ok',
	created_at BIGINT NOT NULL
);

-- One row per WhatsApp chat of a login: chat_id is an opaque keyed hash of
-- (account, chat JID); jid_enc the chat JID, encrypted; contact_hash a
-- keyed hash of the contact's E.164 number (empty for groups) for
-- look-ups by number. timer_ms is the chat's disappearing timer.
CREATE TABLE sb_whatsapp_chat (
	chat_id      TEXT    PRIMARY KEY,
	account      TEXT    NOT NULL,
	jid_enc      TEXT    NOT NULL,
	contact_hash TEXT    NOT NULL DEFAULT '',
	is_group     BOOLEAN NOT NULL DEFAULT false,
	timer_ms     BIGINT  NOT NULL DEFAULT 0,
	created_at   BIGINT  NOT NULL
);
CREATE INDEX sb_whatsapp_chat_contact_idx ON sb_whatsapp_chat (contact_hash);
CREATE INDEX sb_whatsapp_chat_account_idx ON sb_whatsapp_chat (account);

-- Whether a number is on WhatsApp, as IsOnWhatsApp answered, keyed by a
-- keyed hash of the number; rows older than retention.metadata (at most a
-- day) are not used and are deleted.
CREATE TABLE sb_whatsapp_reach (
	number_hash TEXT    PRIMARY KEY,
	on_whatsapp BOOLEAN NOT NULL,
	checked_at  BIGINT  NOT NULL
);
CREATE INDEX sb_whatsapp_reach_checked_idx ON sb_whatsapp_reach (checked_at);
