package whatsapp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
)

func testStoreKeys(t testing.TB) *storeKeys {
	t.Helper()
	k, err := deriveStoreKeys(secret)
	require.NoError(t, err)
	return k
}

// Signal addresses keep their device and their prefix structure: whatsmeow
// deletes and migrates "name:%".
func TestStoreKeysAddress(t *testing.T) {
	k := testStoreKeys(t)
	for _, tc := range []struct{ addr, name, device string }{
		{"14155550177:0", "14155550177", ":0"},
		{"14155550177:3", "14155550177", ":3"},
		{"203040506070809_1:12", "203040506070809_1", ":12"},
		{"no-device", "no-device", ""},
	} {
		got := k.address(tc.addr)
		require.Equal(t, k.signalName(tc.name)+tc.device, got, tc.addr)
		require.True(t, isHashedAddress(got))
		require.False(t, isHashedAddress(tc.addr))
		require.NotContains(t, got, strings.Split(tc.addr, ":")[0])
		require.NotContainsf(t, strings.Split(got, ":")[0], "_", "no LIKE wildcard in %s", got)
		require.Equal(t, got, k.address(tc.addr), "deterministic")
	}
	require.NotEqual(t, k.signalName("14155550177"), k.hash("sender key chat", "14155550177"), "domains differ")
}

func TestStoreKeysSealJID(t *testing.T) {
	k := testStoreKeys(t)
	for _, jid := range []types.JID{contactJID, aliceJID, oldGroupJID, groupJID, types.NewADJID(contactJID.User, 0, 3)} {
		sealed := k.sealJID(jid)
		require.Equal(t, jid.Server, sealed.Server)
		require.Equal(t, jid.Device, sealed.Device)
		require.NotContains(t, sealed.String(), jid.User)
		require.True(t, k.isSealedUser(sealed.User))
		require.False(t, k.isSealedUser(jid.User))
		parsed, err := types.ParseJID(sealed.String())
		require.NoError(t, err)
		require.Equal(t, sealed, parsed, "a sealed JID survives the database as text")
		opened, err := k.openJID(parsed)
		require.NoError(t, err)
		require.Equal(t, jid, opened)
		require.Equal(t, sealed, k.sealJID(jid), "deterministic")
		legacy, ok := k.legacyJID(jid.String())
		require.True(t, ok)
		require.Equal(t, sealed.String(), legacy)
		_, ok = k.legacyJID(sealed.String())
		require.False(t, ok, "sealed once only")
	}
	require.Equal(t, contactLID, k.sealJID(contactLID), "LIDs stay in clear")
	require.NotEqual(t, k.sealJID(contactJID).User, k.sealJID(otherJID).User)

	other, err := deriveStoreKeys(secret + "-other")
	require.NoError(t, err)
	require.NotEqual(t, k.sealJID(contactJID), other.sealJID(contactJID))
	require.NotEqual(t, k.address("14155550177:3"), other.address("14155550177:3"))
	_, err = other.openJID(k.sealJID(contactJID))
	require.ErrorIs(t, err, ErrStoredJID)
	_, ok := other.legacyJID(k.sealJID(contactJID).String())
	require.False(t, ok, "a changed secret does not seal twice")

	for _, bad := range []string{"", "zz", "14155550177", strings.Repeat("0", 80)} {
		_, err = k.openUser(bad)
		require.ErrorIs(t, err, ErrStoredJID, bad)
	}
	_, err = deriveStoreKeys("short")
	require.Error(t, err)
}

// openUser reads text from the database: it never panics, and what it
// accepts is exactly what sealUser makes.
func FuzzStoreKeysOpenUser(f *testing.F) {
	k := testStoreKeys(f)
	f.Add(k.sealUser(contactJID.User))
	f.Add("")
	f.Add("14155550177")
	f.Add(strings.Repeat("ab", 40))
	f.Fuzz(func(t *testing.T, s string) {
		user, err := k.openUser(s)
		if err != nil {
			require.ErrorIs(t, err, ErrStoredJID)
			return
		}
		require.Equal(t, s, k.sealUser(user))
	})
}

func FuzzStoreKeysSealUser(f *testing.F) {
	k := testStoreKeys(f)
	f.Add(contactJID.User)
	f.Add("")
	f.Add("442071838750-1600000000")
	f.Fuzz(func(t *testing.T, user string) {
		sealed := k.sealUser(user)
		require.True(t, k.isSealedUser(sealed))
		got, err := k.openUser(sealed)
		require.NoError(t, err)
		require.Equal(t, user, got)
	})
}
