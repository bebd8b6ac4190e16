-- v5 -> v6: matrix connector: the bot's cross-signing keys and recovery key, sealed
-- One row per bot user: its cross-signing identity (crosssign.go). The
-- master key's public half is kept in the clear to compare with what the
-- homeserver publishes; the private seeds of the master, self-signing and
-- user-signing keys and the secret-storage (recovery) key are sealed
-- together with AES-256-GCM under a key derived from identity.secret,
-- bound to the user ID. published: the homeserver accepted the keys and
-- holds them in secret storage. shown_at (Unix ms) and shown_to: when and
-- to which admin the recovery key was shown; it is shown once.
CREATE TABLE sb_matrix_cross_signing (
	user_id    TEXT    PRIMARY KEY,
	master_key TEXT    NOT NULL,
	secrets    TEXT    NOT NULL,
	published  BOOLEAN NOT NULL DEFAULT false,
	created_at BIGINT  NOT NULL,
	shown_at   BIGINT,
	shown_to   TEXT
);
