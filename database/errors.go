package database

import "errors"

var (
	// ErrUnsupportedType is returned for a database.type other than sqlite or postgres.
	ErrUnsupportedType = errors.New("unsupported database type")
	// ErrUnreachable wraps a failure to connect to the database.
	ErrUnreachable = errors.New("database unreachable")
	// ErrMigration wraps a failed schema upgrade.
	ErrMigration = errors.New("database migration failed")
)
