// Package provision serves the provisioning API,
// /_switchboard/provision/v1/ on the appservice listener: what a user does
// with bot commands (whoami, WhatsApp login, logout, start, link, verify,
// unlink, preferences, retention), as JSON, for the bridge's web page and
// admin tools. docs/provisioning.md is its reference.
//
// Requests act for one Matrix user, authenticated by the shared secret
// (provisioning.shared_secret) with ?user_id=, or by a Matrix OpenID token
// the user's homeserver confirms (openid.go). Every action goes through
// the bot's command registry (commands.Registry.Check and Run), so
// permission levels, safety limits, consent rules and answer texts are
// those of the bot; answers pass through the same phone number redaction.
// Structured results come from the owners' data providers (identity's
// store, the WhatsApp connector's LoginStatus) and from what `start` and
// `retention` record in the request's context (StartRecorder,
// RetentionRecorder).
//
// A WhatsApp login started here is kept in memory (logins.go): bounded in
// number, dropped a while after it ends, visible only to its user.
package provision
