-- v0 -> v1: identity: per-person preferences and consent records
-- A person's settings, keyed by their address ("matrix:@alice:example.org").
CREATE TABLE sb_identity_pref (
	address    TEXT PRIMARY KEY,
	sms_optin  BOOLEAN NOT NULL DEFAULT false,
	reveal     BOOLEAN NOT NULL DEFAULT false,
	prefer     TEXT    NOT NULL DEFAULT '',
	updated_at BIGINT  NOT NULL
);

-- Every opt-in or opt-out, with when it was given: who consented to what.
CREATE TABLE sb_identity_consent (
	address TEXT   NOT NULL,
	kind    TEXT   NOT NULL,
	value   BOOLEAN NOT NULL,
	at      BIGINT NOT NULL
);
CREATE INDEX sb_identity_consent_address_idx ON sb_identity_consent (address, at);
