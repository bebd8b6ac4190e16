package migrations

import "embed"

// Identity is the schema of the identity package (preferences and consent
// records). Its version table is sb_identity_version.
//
//go:embed identity/*.sql
var Identity embed.FS
