package matrix

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// TestGoldenGhost checks the ghost key and ghost localparts against values
// computed by the code before the keyring owned every label (commit
// 5b21206). Ghosts are Matrix users that exist on the homeserver and sit
// in rooms: if their IDs changed, every conversation would get new ones.
func TestGoldenGhost(t *testing.T) {
	key := deriveKey([]byte("golden vector secret, never a real one"), ghostKeyLabel)
	require.Equal(t, "e1f8d73ceb87b6f96de4e29de52e4567cba92211d2a765e594f71bd40c359ec1", hex.EncodeToString(key))
	for _, tc := range []struct {
		network bridge.NetworkID
		remote  bridge.UserID
		opaque  string
	}{
		{"sms", "ph_hzix6yaik6cwq7iubdnizn7i", "yrlf4fpaks7ze5kx"},
		{"whatsapp", "ph_hzix6yaik6cwq7iubdnizn7i", "yrlf4fpaks7ze5kx"}, // one ghost per phone contact
		{"sms", "ph_abc", "52xmsfprohpkrbjj"},
		{"whatsapp", "14155550123@s.whatsapp.net", "34zzlfhg54ri57bx"},
		{"loopback", "alice", "vtcdgw6kdhddzf2d"},
	} {
		t.Run(string(tc.network)+"/"+string(tc.remote), func(t *testing.T) {
			require.Equal(t, tc.opaque, GhostOpaque(key, tc.network, tc.remote))
		})
	}
}
