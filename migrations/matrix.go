package migrations

import "embed"

// Matrix is the schema of the Matrix connector (handled transactions and
// events, ghosts, portal and management rooms). Its version table is
// sb_matrix_version.
//
//go:embed matrix/*.sql
var Matrix embed.FS
