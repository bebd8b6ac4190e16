-- v1 -> v2: matrix connector: events set aside after repeated failures
-- Events of a transaction that kept failing for a reason of the bridge's
-- own (not the event's) after bounded retries. They are set aside so the
-- transaction can be acknowledged and everything behind it proceeds; the
-- admins are told. IDs and a reason category only, never content.
CREATE TABLE sb_matrix_setaside (
	event_id TEXT   PRIMARY KEY,
	room_id  TEXT   NOT NULL,
	reason   TEXT   NOT NULL,
	set_at   BIGINT NOT NULL
);
