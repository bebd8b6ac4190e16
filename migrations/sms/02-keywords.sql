-- v1 -> v2: sms: keywords applied once, the newest winning
-- Keyword messages (STOP, START, HELP…) already handled, by a keyed hash of
-- their MessageSid: no number, no content, and nothing that links the row
-- to a contact. A webhook redelivered or replayed (a signed webhook carries
-- no date) finds its row and changes nothing. applied is false for a
-- keyword older than the one already in force for the contact
-- (sb_sms_optout.updated_at, the time the keyword was received); done is
-- true once the contact's conversations were told. Rows are kept: they are
-- few and anonymous, and a replay can come at any time.
CREATE TABLE sb_sms_keyword (
	sid_hash    TEXT    PRIMARY KEY,
	received_at BIGINT  NOT NULL,
	applied     BOOLEAN NOT NULL,
	done        BOOLEAN NOT NULL DEFAULT false
);
