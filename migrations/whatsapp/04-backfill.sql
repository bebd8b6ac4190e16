-- v3 -> v4: whatsapp: where each chat's bridged history begins
-- The oldest WhatsApp message the bridge knows of in a chat (from a history
-- sync or a live message), which an on-demand history request (`backfill N`)
-- must name to ask the phone for the messages before it: chat_id is the
-- connector's opaque chat ID, message_id WhatsApp's message ID, sent_at its
-- WhatsApp timestamp (ms), from_me whether the account's own phone sent it,
-- noted_at when it was recorded. IDs and times only, no content. Metadata:
-- deleted retention.metadata after noted_at, and with the chat's login.
CREATE TABLE sb_whatsapp_backfill (
	chat_id    TEXT    PRIMARY KEY,
	message_id TEXT    NOT NULL,
	sent_at    BIGINT  NOT NULL,
	from_me    BOOLEAN NOT NULL DEFAULT false,
	noted_at   BIGINT  NOT NULL
);
CREATE INDEX sb_whatsapp_backfill_noted_idx ON sb_whatsapp_backfill (noted_at);
