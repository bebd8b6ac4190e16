package migrations

import "embed"

// Safety is the schema of the safety package (blocks, suspensions, abuse
// signals, the decision log). Its version table is sb_safety_version.
//
//go:embed safety/*.sql
var safetyFS embed.FS

// Safety is the owner value for database.Upgrade.
var Safety = Owner{Name: "safety", Table: "sb_safety_version", FS: safetyFS}
