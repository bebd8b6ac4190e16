// Package database opens switchboard's database — SQLite (embedded, the
// default) or PostgreSQL through pgx — behind go.mau.fi/util/dbutil, and runs
// each owner's embedded migrations with that owner's own version table.
//
// SQLite is opened in WAL mode with secure_delete on, so purged rows are
// overwritten in the database file; call Checkpoint after large purges so the
// -wal file does not keep old pages either. On PostgreSQL, deleted tuples stay
// on disk until VACUUM reclaims them; autovacuum does this eventually, and
// operators with strict retention needs should schedule VACUUM on the
// sb_message and sb_queue tables.
package database
