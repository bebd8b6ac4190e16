package migrations

import "embed"

// Matrix is the schema of the Matrix connector (handled transactions and
// events, ghosts, portal and management rooms). Its version table is
// sb_matrix_version.
//
//go:embed matrix/*.sql
var matrixFS embed.FS

// Matrix is the owner value for database.Upgrade.
var Matrix = Owner{Name: "matrix", Table: "sb_matrix_version", FS: matrixFS}
