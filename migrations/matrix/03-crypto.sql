-- v2 -> v3: matrix connector: encrypted events waiting for their room key; the bot device's lease
-- Encrypted events whose room key had not arrived when they came in. They
-- are kept as they came (ciphertext: the event JSON), handled when the key
-- arrives, and dropped with a notice to the sender after a deadline. Any
-- process may keep one; the process owning the bot device handles it.
CREATE TABLE sb_matrix_undecrypted (
	event_id      TEXT    PRIMARY KEY,
	room_id       TEXT    NOT NULL,
	sender        TEXT    NOT NULL,
	session_id    TEXT    NOT NULL,
	sender_key    TEXT    NOT NULL,
	event_json    TEXT    NOT NULL,
	received_at   BIGINT  NOT NULL,
	key_requested BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX sb_matrix_undecrypted_room_idx ON sb_matrix_undecrypted (room_id, received_at);

-- One row: the process (a random ID per process) that owns the bot's
-- encryption device until lease_until (Unix ms). Others take over after it.
CREATE TABLE sb_matrix_crypto_lease (
	name        TEXT   PRIMARY KEY,
	holder      TEXT   NOT NULL,
	lease_until BIGINT NOT NULL
);
