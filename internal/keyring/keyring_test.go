package keyring_test

import (
	"bytes"
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

	var x, y []byte
	require.NoError(t, keyring.DeriveAll(secret, map[string]*[]byte{"a": &x, "b": &y}))
	require.Equal(t, a, x)
	require.Equal(t, b, y)
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
