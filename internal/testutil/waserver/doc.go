// Package waserver is a WhatsApp server for tests: it speaks enough of
// WhatsApp's multi-device protocol for the real whatsmeow client to pair,
// log in and exchange end-to-end encrypted messages through it, without
// WhatsApp's servers.
//
// What it speaks: a TLS websocket (a test CA's certificate for
// web.whatsapp.com and the media hosts; HTTPClient dials the server
// whatever the host), the Noise_XX_25519_AESGCM_SHA256 handshake with a
// certificate chain signed by a test root key (RootKey: tests set
// whatsmeow.WACertPubKey to it), whatsmeow's binary node encoding
// (go.mau.fi/whatsmeow/binary), and the server side of: pairing by QR
// code (ScanQR) and by pairing code (EnterCode), where the server plays
// the account's primary phone and signs the new device's identity with
// the account key as the phone does; login of a paired device (its Noise
// key is its credential) and keep-alive pings; Signal pre-key upload,
// count and fetch; usync (device lists, contact look-up, LIDs); one-to-one
// message, receipt (delivery, read, retry) and chat-state relay with
// acknowledgements, and per-device queues that keep a stanza until its
// device acknowledges it (a device that was offline gets it when it logs
// in again); groups (create, info, leave with its notification, name and
// description changes, an admin's removal and promotion of members, with
// their notifications (groupedit.go), sender-key
// messages fanned out to every member device); media connection info and
// an HTTPS media host (uploads checked against their hash, stored as
// sent); logout (remove-companion-device) and removal from the phone
// (RemoveDevice); a reinstalled app coming back as the same device with a
// new identity (ReuseDeviceID).
//
// It never decrypts anything: messages and media cross it as whatsmeow
// encrypted them, as they cross WhatsApp's servers.
//
// Not implemented: LID-addressed groups and communities, group
// additions (invites) and demotions, app state, history sync,
// presence subscriptions, calls, newsletters, business features, and
// everything the real servers enforce beyond what whatsmeow checks (rate
// limits, bans, privacy settings, phash of device lists).
package waserver
