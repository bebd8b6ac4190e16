package sms

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGoldenKeys checks the SMS connector's hashes, chat IDs and sealed
// values against values computed by the code before the keyring owned
// every label (commit 5b21206): rows written then must still be found and
// opened, and chats keep their IDs.
func TestGoldenKeys(t *testing.T) {
	k, err := deriveKeys("golden vector secret, never a real one")
	require.NoError(t, err)
	const contact, pool = "+14155550123", "+12025550143"
	require.Equal(t, "vXUX2JO8yfDZ7HLzdR8RRse9lbxeeSguyGZD7QGuZWc", k.contactHash(contact))
	require.Equal(t, "XgSUuZrfxizNEnS1_f6ndsVYbKTLtw98UU-fK5mVj9E", k.poolHash(pool))
	require.Equal(t, "sms_6hamdqfyi4zn5radodbo2dpg", k.chatID(contact, pool, ""))
	require.Equal(t, "sms_aufl32qd353ftgn2bltf6cxx", k.chatID(contact, pool, "conv1"))
	id, name := k.pseudonym(contact)
	require.Equal(t, "ph_hzix6yaik6cwq7iubdnizn7i", id)
	require.Equal(t, "Contact hzix6y", name)
	require.Equal(t, "dwtf2gpb", k.logRef(contact))
	require.Equal(t, "Gscud11_Pj2dtMCLqwogqb8n98V3iyYprq9UPc9UJjU", k.sidHash("SM0123456789abcdef"))

	number, err := k.open("1ucjzAYp4JE/wPv/N+adBMW2u2xe/rrq6auGyr6UrGBUW1CnhRtNZg==", k.contactHash(contact))
	require.NoError(t, err)
	require.Equal(t, contact, number)

	frame, err := hex.DecodeString("6b9d8d8561f39338880a3d54ba4cd0f7cedface2fde780be5371097e2316d1e3a0")
	require.NoError(t, err)
	plain, err := k.spool.Open(frame, []byte(spoolAD))
	require.NoError(t, err)
	require.Equal(t, "frame", string(plain))
}
