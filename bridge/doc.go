// Package bridge is switchboard's core router. It owns conversations and
// their legs (one chat on one network each), the opaque IDs that name them,
// the normalized message model, the message-ID map between networks, and
// durable, ordered delivery: a message accepted on one leg is sealed into
// the database queue, acknowledged, and delivered to every other leg by
// workers that retry with backoff and report failures to the sender.
//
// Connectors (one per network) implement the small Connector interface and
// any optional capability interfaces; the router checks capabilities with a
// type assertion and answers a missing one with ErrNotSupported.
package bridge
