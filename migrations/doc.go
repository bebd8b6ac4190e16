// Package migrations holds switchboard's SQL schema, one directory per owner
// (core router, connectors, identity). Each owner has its own version table,
// so owners upgrade independently. Files follow go.mau.fi/util/dbutil's
// upgrade-table format: a "-- v0 -> vN: message" header, and
// "-- only: postgres" / "-- only: sqlite" lines (or blocks ending with
// "-- end only ...") where the two dialects differ.
package migrations

import "embed"

// Core is the schema of the core router (conversations, legs, message map,
// delivery queue). Its version table is sb_core_version.
//
//go:embed core/*.sql
var coreFS embed.FS

// Core is the owner value for database.Upgrade.
var Core = Owner{Name: "core", Table: "sb_core_version", FS: coreFS}

// Owner is one owner's schema: its name (the directory of its SQL files),
// its version table and the embedded files. Each owner is one exported
// value of this package, so the table name and directory are written once.
type Owner struct {
	// Name is the owner's directory under migrations/.
	Name string
	// Table is the owner's version table.
	Table string
	// FS holds Name/*.sql.
	FS embed.FS
}
