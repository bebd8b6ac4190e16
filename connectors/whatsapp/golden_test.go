package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
)

// goldenSecret and the values below were computed by the code before the
// keyring owned every label (commit 5b21206): chat IDs, look-up hashes,
// the bridge's own message IDs and whatsmeow's sealed JIDs written then
// must stay the same, or existing databases stop working.
const goldenSecret = "golden vector secret, never a real one"

func TestGoldenKeys(t *testing.T) {
	k, err := deriveKeys(goldenSecret)
	require.NoError(t, err)
	const account, contact = "14155550000@s.whatsapp.net", "14155550123@s.whatsapp.net"
	require.Equal(t, "M7SaZ-sjrh71Ypgvybva63mgeUj7oGHe9Ylh4OA3FBo", k.numberHash("+14155550123"))
	require.Equal(t, "wa_4hnsid7irfphdlabvlypwq2g", k.chatID(account, contact))
	require.Equal(t, "wa_cmfrag6qdd43y43u633vxr2i", k.chatID(account, "120363000000000000@g.us"))
	require.Equal(t, "_d2iEsCyyMtJiE-5Msg45oac3xec80niU8zh0W0pLaQ", k.reactionKey(account, "chat\x00sender\x00target"))
	require.Equal(t, "a3j7wuke", k.logRef(contact))
	c := &Connector{keys: k}
	require.Equal(t, "3EB049691589F6A8C264D9", c.ownID("delivery", "1"))
	require.True(t, c.isOwnID("3EB049691589F6A8C264D9"))

	jid, err := k.open("+3ATXdR35zO3WQ1g8TX3e7gmZUZl3AcXkopScoKv8pXHbZgwRL2sG2ftRB7WN1xBPKcxleZ0", "wa_chat")
	require.NoError(t, err)
	require.Equal(t, contact, jid)
}

func TestGoldenStoreKeys(t *testing.T) {
	k, err := deriveStoreKeys(goldenSecret)
	require.NoError(t, err)
	const name = "f84c28d5c3abfa0e800959b5b7a35815a8ff05ecec3754450263ca1ca5983ba2"
	require.Equal(t, name, k.signalName("14155550123"))
	require.Equal(t, name+":2", k.address("14155550123:2"))
	const sealed = "e73892c10f41bc4a28bad8edb71594f27f0458da29a44dadab1c180c1d8d972a82213c85821012"
	require.Equal(t, sealed, k.sealUser("14155550123"), "deterministic: whatsmeow joins on it")
	require.Equal(t, sealed+"@s.whatsapp.net", k.sealJID(types.NewJID("14155550123", types.DefaultUserServer)).String())
	user, err := k.openUser(sealed)
	require.NoError(t, err)
	require.Equal(t, "14155550123", user)
}
