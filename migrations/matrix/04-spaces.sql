-- v3 -> v4: matrix connector: personal spaces; which remote user each ghost stands for
-- Each Matrix user's space (an m.space room the bot created and invited
-- them to), holding their portals as children.
CREATE TABLE sb_matrix_space (
	user_id    TEXT   PRIMARY KEY,
	room_id    TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);

-- The remote user a ghost stands for, so that a kick of the ghost from a
-- portal can name the member to remove on the other network. remote_id is
-- the network's opaque user ID: for phone contacts the keyed pseudonym
-- (identity.Pseudonyms), never a number; the ghost's localpart is itself
-- a keyed hash of it.
CREATE TABLE sb_matrix_ghost_remote (
	user_id   TEXT NOT NULL PRIMARY KEY,
	network   TEXT NOT NULL,
	remote_id TEXT NOT NULL
);
