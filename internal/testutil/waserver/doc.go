// Package waserver is a WhatsApp server for tests: it speaks enough of
// WhatsApp's multi-device protocol for the real whatsmeow client to pair,
// log in and exchange end-to-end encrypted messages through it, without
// WhatsApp's servers.
//
// What it speaks: a TLS websocket (a test CA's certificate for
// web.whatsapp.com; HTTPClient dials the server whatever the host), the
// Noise_XX_25519_AESGCM_SHA256 handshake with a certificate chain signed
// by a test root key (RootKey: tests set whatsmeow.WACertPubKey to it),
// whatsmeow's binary node encoding (go.mau.fi/whatsmeow/binary), and the
// server side of: QR pairing, where the server plays the account's
// primary phone (ScanQR signs the device identity with the account's
// key, as the phone does); login of a paired device; keep-alive pings;
// Signal pre-key upload, count and fetch; usync (device lists, contact
// look-up, LIDs); message, receipt and chat-state relay between connected
// devices with acknowledgements, and per-device queues that keep a stanza
// until its device acknowledges it (so a device that was offline gets it
// when it logs in again); logout (remove-companion-device).
//
// It never decrypts anything: messages cross it as Signal ciphertext
// between whatsmeow clients, as they cross WhatsApp's servers.
//
// Not implemented (see the package's tests for what is): pairing codes,
// groups and sender-key distribution, media upload and download, app
// state, history sync, presence subscriptions, calls, newsletters.
package waserver
