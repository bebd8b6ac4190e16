package migrations

import "embed"

// Identity is the schema of the identity package (preferences and consent
// records). Its version table is sb_identity_version.
//
//go:embed identity/*.sql
var identityFS embed.FS

// Identity is the owner value for database.Upgrade.
var Identity = Owner{Name: "identity", Table: "sb_identity_version", FS: identityFS}
