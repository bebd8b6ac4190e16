package bridge

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// The sb_seen hashes written by earlier versions must still match: the
// pooled seenHash is keyring.MAC over the same parts, from any goroutine.
func TestSeenHashMatchesKeyringMAC(t *testing.T) {
	s, err := newSealer([]byte("a bridge secret of some length"))
	require.NoError(t, err)
	cases := []struct {
		leg    Leg
		remote RemoteID
	}{
		{Leg{Network: "matrix", Chat: "!room:example.org"}, "$event"},
		{Leg{Network: "sms", Chat: "+15550100"}, ""},
		{Leg{Network: "", Chat: ""}, "x"},
		{Leg{Network: "whatsapp", Chat: ChatID(strings.Repeat("c", 300))}, RemoteID(strings.Repeat("r", 300))},
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				for _, tc := range cases {
					want := keyring.MAC(s.seenKey, string(tc.leg.Network), string(tc.leg.Chat), string(tc.remote))
					if got := s.seenHash(tc.leg, tc.remote); string(got) != string(want) {
						t.Errorf("seenHash(%v, %q) differs from keyring.MAC", tc.leg, tc.remote)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
