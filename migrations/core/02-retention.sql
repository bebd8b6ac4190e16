-- v1 -> v2: retention: leg timers, expiry and metadata indexes
-- A leg's own disappearing timer in milliseconds (the WhatsApp chat timer,
-- Matrix com.beeper.disappearing_timer room state); NULL = none.
ALTER TABLE sb_leg ADD COLUMN timer_ms BIGINT;
-- Undelivered copies of expiring messages, purged by deadline.
CREATE INDEX sb_queue_expiry_idx ON sb_queue (expires_at) WHERE expires_at IS NOT NULL;
-- Metadata minimization: mapping rows without a deadline, found by age.
CREATE INDEX sb_message_created_idx ON sb_message (created_at) WHERE expires_at IS NULL;
-- After-read conversation setting: the clock of retention_ms starts when a
-- recipient reads a message, not when it is sent.
ALTER TABLE sb_conversation ADD COLUMN retention_after_read BOOLEAN NOT NULL DEFAULT false;
-- Messages of after-read conversations whose clock has not started, keyed
-- like their source row in sb_message. The row goes when the clock starts
-- (a read) or the message expires.
CREATE TABLE sb_read_timer (
	network    TEXT   NOT NULL,
	chat_id    TEXT   NOT NULL,
	remote_id  TEXT   NOT NULL,
	keep_ms    BIGINT NOT NULL,
	PRIMARY KEY (network, chat_id, remote_id)
);
