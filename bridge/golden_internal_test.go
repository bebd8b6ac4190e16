package bridge

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGoldenSealer checks the router's keys against values computed by the
// code before the keyring owned every label (commit 5b21206): queued
// payloads and sb_seen rows written then must still open and match.
func TestGoldenSealer(t *testing.T) {
	s, err := newSealer([]byte("golden vector secret, never a real one"))
	require.NoError(t, err)
	require.Equal(t, "2572e295de511055c575ad6bb872bb298e77eca93de1d8a2047898d7f6f42169",
		hex.EncodeToString(s.seenHash(Leg{Network: "sms", Chat: "sms_abc"}, "SM123")))
	sealed, err := hex.DecodeString("d373e78dc7df4fc3d09e3b9627f282d735887d0fc574084d2683da1728ffbb9a8fd9197785e09120b5184aa1")
	require.NoError(t, err)
	plain, err := s.open(sealed, payloadAD(Leg{Network: "matrix", Chat: "!room:example.org"}, "msg1"))
	require.NoError(t, err)
	require.Equal(t, `{"body":"hello"}`, string(plain))
}
