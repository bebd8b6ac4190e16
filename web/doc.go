// Package web serves switchboard's web page for users at /_switchboard/web/:
// sign in with a Matrix OpenID token, see the bridge's networks and their
// state, log in to WhatsApp (QR code or pairing code), link and verify a
// phone number, and set preferences. The page is plain HTML, CSS and a
// little JavaScript embedded in the binary (static/), with no build step
// and no external assets, and it uses only the provisioning API
// (docs/provisioning.md) — and, for a password sign-in, the homeserver.
//
// Sign-in: the page asks the user's homeserver for an OpenID token, either
// with the user's password (POST /login, then
// /user/{userId}/openid/request_token, then /logout of that temporary
// session, all from the browser to homeserver.address, so the bridge never
// sees the password), or takes an OpenID token the user pasted. The token
// is kept in the page's memory only and sent to the API as
// "Bearer openid:<token>".
//
// Every answer carries a strict Content-Security-Policy: nothing loads but
// the page's own files, scripts and styles only from them (no inline code),
// connections only to the page's own origin and the configured
// homeserver's, no framing, no form posts, no base URL; plus nosniff,
// Referrer-Policy: no-referrer and a same-origin opener policy.
package web
