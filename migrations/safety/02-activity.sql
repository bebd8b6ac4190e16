-- v1 -> v2: safety: recent per-conversation activity, kept across restarts
-- What a person sent in a conversation within the signal window (counts
-- and first/last times, and how many nobody answered), for the abuse
-- score's unanswered share and the counts in reports. Metadata only: no
-- content, people as person keys. Written from memory every 30 seconds
-- and at shutdown; deleted once quiet for the signal window.
CREATE TABLE sb_safety_activity (
	conversation_id TEXT    NOT NULL,
	person          TEXT    NOT NULL,
	sent            INTEGER NOT NULL,
	unanswered      INTEGER NOT NULL,
	first_at        BIGINT  NOT NULL,
	last_at         BIGINT  NOT NULL,
	PRIMARY KEY (conversation_id, person)
);
CREATE INDEX sb_safety_activity_last_idx ON sb_safety_activity (last_at);
