-- v4 -> v5: matrix connector: bridge-info state written per portal; double puppeting opt-ins
-- What the MSC2346 bridge-info state events last written to a portal
-- describe: a hash of their content (bridgeinfo.go), '' before any. A
-- portal whose hash differs from the current description is rewritten on
-- start or on its next use.
ALTER TABLE sb_matrix_portal ADD COLUMN bridge_info TEXT NOT NULL DEFAULT '';

-- Matrix users on the bridge's homeserver who turned double puppeting on:
-- their own messages sent from another network's app (WhatsApp on the
-- phone) appear in portals from their own Matrix account, sent with the
-- appservice's token. Only the opt-in is kept; no token of theirs.
CREATE TABLE sb_matrix_double_puppet (
	user_id    TEXT   PRIMARY KEY,
	enabled_at BIGINT NOT NULL
);
