package bridge_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// TestReadMediaIgnoresDeclaredSize: Delivery.ReadMedia reads the real
// attachment up to limit+1 bytes; it returns it whole when it fits and
// refuses it (permanent ErrMediaTooLarge) when it does not, whatever size
// the source declared (bridge.Media.Size, a Matrix event's info.size).
func TestReadMediaIgnoresDeclaredSize(t *testing.T) {
	const limit = 64
	h := startHarness(t, dbtest.SQLite(t))
	h.conversation(legA("room"), legB("chat"))
	ctx := context.Background()
	type result struct {
		data []byte
		err  error
	}
	var mu sync.Mutex
	results := map[bridge.RemoteID]result{}
	h.b.OnSend(func(d *bridge.Delivery) error {
		data, err := d.ReadMedia(ctx, limit)
		mu.Lock()
		results[d.Event.SourceID] = result{data, err}
		mu.Unlock()
		return err
	})
	for _, tc := range []struct {
		name           string
		real, declared int
		tooLarge       bool
	}{
		{"no size declared", 10, 0, false},
		{"declared smaller", 40, 1, false},
		{"declared larger", 40, 4000, false},
		{"at the limit, declared larger", limit, limit + 1, false},
		{"over the limit, declared smaller", limit + 1, limit, true},
		{"far over the limit, declared tiny", 50 * limit, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "ref-" + tc.name
			data := bytes.Repeat([]byte{'m'}, tc.real)
			h.a.PutMedia(ref, data)
			id := bridge.RemoteID("$" + tc.name)
			require.NoError(t, h.a.Receive(ctx, &bridge.Event{
				Kind: bridge.KindMessage, Source: legA("room"), SourceID: id,
				Content: &bridge.Content{Type: bridge.MsgFile, Body: "f", Media: &bridge.Media{Ref: ref, Size: int64(tc.declared)}},
			}))
			var got result
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				var ok bool
				got, ok = results[id]
				return ok
			}, 5*time.Second, 5*time.Millisecond)
			if tc.tooLarge {
				require.ErrorIs(t, got.err, bridge.ErrMediaTooLarge)
				require.ErrorIs(t, got.err, bridge.ErrPermanent)
				require.Nil(t, got.data, "refused, not truncated")
				st, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == id && r.State == bridge.StateFailed })
				require.True(t, ok, "the sender is told")
				require.ErrorIs(t, st.Err, bridge.ErrMediaTooLarge)
				return
			}
			require.NoError(t, got.err)
			require.Equal(t, data, got.data, "the real content, whole")
		})
	}
}
