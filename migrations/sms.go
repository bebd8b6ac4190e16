package migrations

import "embed"

// SMS is the schema of the SMS connector (contacts bound to pool numbers,
// opt-outs, the MessageSid map used by status callbacks, and the keyed
// hashes of keyword messages already handled). Its version table is
// sb_sms_version.
//
//go:embed sms/*.sql
var smsFS embed.FS

// SMS is the owner value for database.Upgrade.
var SMS = Owner{Name: "sms", Table: "sb_sms_version", FS: smsFS}
