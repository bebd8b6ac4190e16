-- v0 -> v1: matrix connector: transactions, handled events, ghosts, portals, management rooms
-- Transactions the homeserver sent us that were fully handled. A replayed
-- txnId is answered 200 without handling its events again.
CREATE TABLE sb_matrix_txn (
	txn_id      TEXT   PRIMARY KEY,
	received_at BIGINT NOT NULL
);

-- Events that were handled outside the router (commands, invites), so a
-- second transaction carrying the same event does not answer twice. Events
-- submitted to the router are deduplicated by the router itself.
CREATE TABLE sb_matrix_event (
	event_id   TEXT   PRIMARY KEY,
	handled_at BIGINT NOT NULL
);

-- Ghost users the bridge registered. The localpart is a keyed hash; the
-- remote user it stands for is not stored.
CREATE TABLE sb_matrix_ghost (
	user_id      TEXT   PRIMARY KEY,
	displayname  TEXT   NOT NULL DEFAULT '',
	registered_at BIGINT NOT NULL
);

-- Portal rooms the bot created for Matrix legs of conversations.
CREATE TABLE sb_matrix_portal (
	room_id    TEXT    PRIMARY KEY,
	owner      TEXT    NOT NULL,
	is_direct  BOOLEAN NOT NULL DEFAULT false,
	encrypted  BOOLEAN NOT NULL DEFAULT false,
	created_at BIGINT  NOT NULL
);

-- Rooms where the bot talks to one user without a prefix (DMs with the bot).
CREATE TABLE sb_matrix_management_room (
	room_id    TEXT   PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);
