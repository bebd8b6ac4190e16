//go:build !goolm

package matrix

// EncryptionCompiled reports whether this binary has end-to-end
// encryption: true only in a build with -tags goolm. The daemon refuses to
// start with encryption.allow: true when it is false.
func EncryptionCompiled() bool { return false }

// newCryptor returns nil: this build has no end-to-end encryption. Build
// with -tags goolm to get it.
func newCryptor(*Connector) (cryptor, error) { return nil, nil }
