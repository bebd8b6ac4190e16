-- v2 -> v3: seen source events outlive their expired messages
-- The router recognises a redelivered source event by its sb_message row,
-- and expiry deletes that row with the message. Each copy expiry deletes
-- leaves a keyed hash of its (network, chat_id, remote_id) here: HMAC-SHA256
-- under a key derived from identity.secret, so no raw ID and no content is
-- stored. The row is forgotten at forget_at (the redelivery horizon after
-- the expiry, rounded up to the hour; see bridge/expiry.go).
CREATE TABLE sb_seen (
	-- only: postgres
	hash      BYTEA  PRIMARY KEY,
	-- only: sqlite (line commented)
--	hash      BLOB   PRIMARY KEY,
	forget_at BIGINT NOT NULL
);
CREATE INDEX sb_seen_forget_idx ON sb_seen (forget_at);
