-- v1 -> v2: identity: pending verification codes and code requests
-- One pending verification per person. The number is encrypted (number_enc)
-- and found by a keyed hash (number_lookup); the code is stored only as a
-- keyed hash.
CREATE TABLE sb_identity_verification (
	address       TEXT    PRIMARY KEY,
	number_lookup TEXT    NOT NULL,
	-- only: postgres
	number_enc    BYTEA   NOT NULL,
	-- only: sqlite (line commented)
--	number_enc    BLOB    NOT NULL,
	code_hash     TEXT    NOT NULL,
	created_at    BIGINT  NOT NULL,
	expires_at    BIGINT  NOT NULL,
	tries         INTEGER NOT NULL DEFAULT 0
);

-- Code requests, for rate limits per person and per number. Metadata:
-- purged after the longest rate-limit window.
CREATE TABLE sb_identity_code_request (
	address       TEXT   NOT NULL,
	number_lookup TEXT   NOT NULL,
	at            BIGINT NOT NULL
);
CREATE INDEX sb_identity_code_request_address_idx ON sb_identity_code_request (address, at);
CREATE INDEX sb_identity_code_request_number_idx ON sb_identity_code_request (number_lookup, at);
