package keyring_test

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestDerive(t *testing.T) {
	a, err := keyring.Derive(secret, "a")
	require.NoError(t, err)
	b, err := keyring.Derive(secret, "b")
	require.NoError(t, err)
	again, err := keyring.Derive(secret, "a")
	require.NoError(t, err)
	require.Len(t, a, 32)
	require.Equal(t, a, again, "stable")
	require.NotEqual(t, a, b, "one key per label")
	_, err = keyring.Derive([]byte("short"), "a")
	require.ErrorIs(t, err, keyring.ErrShortSecret)

	k, err := keyring.New(secret)
	require.NoError(t, err)
	require.Equal(t, a, k.Key("a"), "the keyring gives what Derive gives")
	require.Equal(t, b, k.Key("b"))
}

func TestNewChecksTheSecret(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"empty", "", false},
		{"one short", "0123456789abcde", false},
		{"shortest", "0123456789abcdef", true},
		{"long", "0123456789abcdef0123456789abcdef", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := keyring.New([]byte(tc.secret))
			if tc.ok {
				require.NoError(t, err)
				require.NotNil(t, k)
				return
			}
			require.ErrorIs(t, err, keyring.ErrShortSecret)
			require.Contains(t, err.Error(), "at least 16", "says what is needed")
			if tc.secret != "" {
				require.NotContains(t, err.Error(), tc.secret, "never the secret")
			}
		})
	}
}

func TestHashForms(t *testing.T) {
	key, _ := keyring.Derive(secret, "mac")
	mac := keyring.MAC(key, "a", "b")
	require.Equal(t, base64.RawURLEncoding.EncodeToString(mac), keyring.Hash(key, "a", "b"))
	id := keyring.ShortID(key, 15, "a", "b")
	require.Len(t, id, 24)
	require.Equal(t, strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac[:15])), id)
	require.Len(t, keyring.ShortID(key, 5, "a"), 8)
	require.Len(t, keyring.Sum(key, "a"), 32)
	require.NotEqual(t, keyring.Sum(key, "a"), keyring.MAC(key, "a"), "Sum has no separator")
}

func TestMAC(t *testing.T) {
	key, _ := keyring.Derive(secret, "mac")
	require.Equal(t, keyring.MAC(key, "ab", "c"), keyring.MAC(key, "ab", "c"))
	require.NotEqual(t, keyring.MAC(key, "ab", "c"), keyring.MAC(key, "a", "bc"), "parts are separated")
	other, _ := keyring.Derive(secret, "other")
	require.NotEqual(t, keyring.MAC(key, "x"), keyring.MAC(other, "x"), "keyed")
}

func TestSealOpen(t *testing.T) {
	a, err := keyring.DeriveAEAD(secret, "enc")
	require.NoError(t, err)
	plain := []byte("+14155550123")
	s1, s2 := a.Seal(plain, []byte("row1")), a.Seal(plain, []byte("row1"))
	require.NotEqual(t, s1, s2, "random nonce")
	require.False(t, bytes.Contains(s1, plain))
	got, err := a.Open(s1, []byte("row1"))
	require.NoError(t, err)
	require.Equal(t, plain, got)
	_, err = a.Open(s1, []byte("row2"))
	require.ErrorIs(t, err, keyring.ErrSealed, "bound to its place")
	_, err = a.Open(s1[:5], []byte("row1"))
	require.ErrorIs(t, err, keyring.ErrSealed, "truncated")
	b, _ := keyring.DeriveAEAD(secret, "other")
	_, err = b.Open(s1, []byte("row1"))
	require.ErrorIs(t, err, keyring.ErrSealed, "bound to its key")
}

func TestSealOpenString(t *testing.T) {
	a, err := keyring.DeriveAEAD(secret, "enc")
	require.NoError(t, err)
	s := a.SealString("+14155550123", "hash")
	require.NotContains(t, s, "4155550123")
	got, err := a.OpenString(s, "hash")
	require.NoError(t, err)
	require.Equal(t, "+14155550123", got)
	for _, tc := range []struct{ name, sealed, ad string }{
		{"other place", s, "other"},
		{"not base64", "%%%", "hash"},
		{"truncated", s[:8], "hash"},
		{"empty", "", "hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.OpenString(tc.sealed, tc.ad)
			require.ErrorIs(t, err, keyring.ErrSealed)
		})
	}
}
