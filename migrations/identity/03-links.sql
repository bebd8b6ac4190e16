-- v2 -> v3: identity: verified links and the routes derived from them
-- A phone number verified by a person (owner, "matrix:@alice:example.org").
-- The number is encrypted (number_enc, bound to number_lookup) and found by
-- a keyed hash (number_lookup); pseudonym is the contact pseudonym the
-- number appears under on phone networks, so a contact seen on SMS or
-- WhatsApp can be recognised as the linked person without the number.
CREATE TABLE sb_identity_link (
	number_lookup TEXT   PRIMARY KEY,
	owner         TEXT   NOT NULL,
	-- only: postgres
	number_enc    BYTEA  NOT NULL,
	-- only: sqlite (line commented)
--	number_enc    BLOB   NOT NULL,
	pseudonym     TEXT   NOT NULL,
	created_at    BIGINT NOT NULL
);
CREATE INDEX sb_identity_link_owner_idx ON sb_identity_link (owner);
CREATE INDEX sb_identity_link_pseudonym_idx ON sb_identity_link (pseudonym);

-- Routes derived from a link: the chat a requester's `start +N` opened
-- because +N was linked (a native Matrix room, or the network the linked
-- person prefers). Deleted with the link.
CREATE TABLE sb_identity_route (
	requester     TEXT   NOT NULL,
	number_lookup TEXT   NOT NULL,
	network       TEXT   NOT NULL,
	chat          TEXT   NOT NULL,
	created_at    BIGINT NOT NULL,
	PRIMARY KEY (requester, number_lookup)
);
CREATE INDEX sb_identity_route_number_idx ON sb_identity_route (number_lookup);
