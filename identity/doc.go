// Package identity owns people: their preferences (SMS fallback opt-in,
// revealing their number, which network they prefer), the record of every
// consent they gave or withdrew, the phone numbers they verified and linked
// (encrypted at rest, found by keyed hash), the routes derived from those
// links, and the pseudonyms phone contacts appear under. Service answers
// the link commands; Decide routes a chat to a phone number.
package identity
