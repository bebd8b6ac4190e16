package migrations

import "embed"

// WhatsApp is the schema of the WhatsApp connector (logins of Matrix users
// and of the relay account, chats, the reachability cache, group message
// senders and reactions, relay groups whose contact left, poll option hashes). Its version table is sb_whatsapp_version. whatsmeow's own session store
// (store/sqlstore) lives in the same database under whatsmeow_version.
//
//go:embed whatsapp/*.sql
var whatsappFS embed.FS

// WhatsApp is the owner value for database.Upgrade.
var WhatsApp = Owner{Name: "whatsapp", Table: "sb_whatsapp_version", FS: whatsappFS}
