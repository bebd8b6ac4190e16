package migrations

import "embed"

// SMS is the schema of the SMS connector (contacts bound to pool numbers,
// opt-outs, and the MessageSid map used by status callbacks). Its version
// table is sb_sms_version.
//
//go:embed sms/*.sql
var SMS embed.FS
