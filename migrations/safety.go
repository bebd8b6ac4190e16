package migrations

import "embed"

// Safety is the schema of the safety package (blocks, suspensions, abuse
// signals, the decision log). Its version table is sb_safety_version.
//
//go:embed safety/*.sql
var Safety embed.FS
