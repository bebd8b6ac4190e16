//go:build !goolm

package matrix

// newCryptor returns nil: this build has no end-to-end encryption. Build
// with -tags goolm to get it.
func newCryptor(*Connector) (cryptor, error) { return nil, nil }
