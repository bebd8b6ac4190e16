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
var Core embed.FS
