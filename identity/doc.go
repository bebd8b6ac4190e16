// Package identity owns people: their preferences (SMS fallback opt-in,
// revealing their number, which network they prefer) and the record of
// every consent they gave or withdrew. Account linking, verification codes
// and reach-by-phone routing build on it.
package identity
