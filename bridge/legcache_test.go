package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// legSend is one message sent after a leg change, with the legs it must
// reach (and nothing else), or the error Submit must return.
type legSend struct {
	from    bridge.Leg
	body    string
	want    []bridge.Leg
	wantErr error
}

// The router keeps legs' conversations in memory (on SQLite); every leg
// change forgets them: a message sent after a leg was added reaches it,
// after it was removed does not, both as the admitter sees it and as it
// is delivered. Each case first sends from every leg in warm so the
// memory holds the conversation before the change.
func TestLegChangesForgetCachedLegs(t *testing.T) {
	legC := func(chat string) bridge.Leg { return bridge.Leg{Network: netC, Chat: bridge.ChatID(chat)} }
	cases := []struct {
		name   string
		convs  [][]bridge.Leg
		warm   []bridge.Leg
		change func(ctx context.Context, r *bridge.Router, convs []bridge.ConversationID) error
		sends  []legSend
	}{{
		name:  "leg added",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1")}},
		warm:  []bridge.Leg{legA("a1")},
		change: func(ctx context.Context, r *bridge.Router, convs []bridge.ConversationID) error {
			return r.AddLeg(ctx, convs[0], legC("c1"))
		},
		sends: []legSend{
			{from: legA("a1"), body: "after add", want: []bridge.Leg{legB("b1"), legC("c1")}},
			{from: legC("c1"), body: "from the new leg", want: []bridge.Leg{legA("a1"), legB("b1")}},
		},
	}, {
		name:  "leg added, cached from another leg",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1")}},
		warm:  []bridge.Leg{legB("b1")},
		change: func(ctx context.Context, r *bridge.Router, convs []bridge.ConversationID) error {
			return r.AddLeg(ctx, convs[0], legC("c1"))
		},
		sends: []legSend{{from: legA("a1"), body: "after add", want: []bridge.Leg{legB("b1"), legC("c1")}}},
	}, {
		name:  "leg removed",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1"), legC("c1")}},
		warm:  []bridge.Leg{legA("a1"), legC("c1")},
		change: func(ctx context.Context, r *bridge.Router, _ []bridge.ConversationID) error {
			return r.RemoveLeg(ctx, legC("c1"))
		},
		sends: []legSend{
			{from: legA("a1"), body: "after remove", want: []bridge.Leg{legB("b1")}},
			{from: legC("c1"), body: "from the removed leg", wantErr: bridge.ErrUnknownLeg},
		},
	}, {
		name:  "source leg removed",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1")}},
		warm:  []bridge.Leg{legA("a1")},
		change: func(ctx context.Context, r *bridge.Router, _ []bridge.ConversationID) error {
			return r.RemoveLeg(ctx, legA("a1"))
		},
		sends: []legSend{
			{from: legA("a1"), body: "after remove", wantErr: bridge.ErrUnknownLeg},
			{from: legB("b1"), body: "to nobody"},
		},
	}, {
		name:  "leg moved to another conversation",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1"), legC("c1")}, {legA("a2"), legB("b2")}},
		warm:  []bridge.Leg{legA("a1"), legA("a2"), legC("c1")},
		change: func(ctx context.Context, r *bridge.Router, convs []bridge.ConversationID) error {
			if err := r.RemoveLeg(ctx, legC("c1")); err != nil {
				return err
			}
			return r.AddLeg(ctx, convs[1], legC("c1"))
		},
		sends: []legSend{
			{from: legA("a1"), body: "old conversation", want: []bridge.Leg{legB("b1")}},
			{from: legA("a2"), body: "new conversation", want: []bridge.Leg{legB("b2"), legC("c1")}},
			{from: legC("c1"), body: "from the moved leg", want: []bridge.Leg{legA("a2"), legB("b2")}},
		},
	}, {
		name:  "removed leg in a new conversation",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1")}},
		warm:  []bridge.Leg{legA("a1"), legB("b1")},
		change: func(ctx context.Context, r *bridge.Router, _ []bridge.ConversationID) error {
			if err := r.RemoveLeg(ctx, legB("b1")); err != nil {
				return err
			}
			_, err := r.CreateConversation(ctx, legB("b1"), legC("c1"))
			return err
		},
		sends: []legSend{
			{from: legA("a1"), body: "alone now"},
			{from: legB("b1"), body: "in the new one", want: []bridge.Leg{legC("c1")}},
		},
	}, {
		name:  "failed add changes nothing",
		convs: [][]bridge.Leg{{legA("a1"), legB("b1")}, {legA("a2"), legC("c2")}},
		warm:  []bridge.Leg{legA("a1"), legA("a2")},
		change: func(ctx context.Context, r *bridge.Router, convs []bridge.ConversationID) error {
			if err := r.AddLeg(ctx, convs[0], legC("c2")); !errors.Is(err, bridge.ErrLegInUse) {
				return fmt.Errorf("adding a leg in use: want ErrLegInUse, got %v", err)
			}
			return nil
		},
		sends: []legSend{
			{from: legA("a1"), body: "still one", want: []bridge.Leg{legB("b1")}},
			{from: legA("a2"), body: "still two", want: []bridge.Leg{legC("c2")}},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, dbo database.Options) {
				var mu sync.Mutex
				admitted := make(map[string][]bridge.Leg)
				admit := bridge.AdmitFunc(func(_ context.Context, a *bridge.Admission) error {
					mu.Lock()
					defer mu.Unlock()
					admitted[a.Event.Content.Body] = append([]bridge.Leg(nil), a.Dests...)
					return nil
				})
				c := bridgetest.NewLoopback(netC)
				h := startHarness(t, dbo, withConnector(c), withOptions(func(o *bridge.Options) { o.Admitter = admit }))
				loops := map[bridge.NetworkID]*bridgetest.Loopback{netA: h.a, netB: h.b, netC: c}
				ctx := context.Background()
				var convs []bridge.ConversationID
				for _, legs := range tc.convs {
					convs = append(convs, h.conversation(legs...))
				}
				submit := func(from bridge.Leg, body string) error {
					evt := text(string(from.Chat), body, body)
					return loops[from.Network].Receive(ctx, evt)
				}
				for _, from := range tc.warm {
					require.NoError(t, submit(from, "warm "+string(from.Chat)))
				}
				waitQueueEmpty(t, h.router)
				require.NoError(t, tc.change(ctx, h.router, convs))
				for _, s := range tc.sends {
					err := submit(s.from, s.body)
					if s.wantErr != nil {
						require.ErrorIs(t, err, s.wantErr, s.body)
						continue
					}
					require.NoError(t, err, s.body)
				}
				waitQueueEmpty(t, h.router)
				reached := make(map[string][]bridge.Leg)
				for network, lb := range loops {
					for _, sent := range lb.Sent() {
						body := sent.Delivery.Event.Content.Body
						reached[body] = append(reached[body], bridge.Leg{Network: network, Chat: sent.Chat})
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for _, s := range tc.sends {
					if s.wantErr != nil {
						require.Empty(t, reached[s.body], s.body)
						continue
					}
					require.ElementsMatch(t, s.want, reached[s.body], "%s: delivered to", s.body)
					require.ElementsMatch(t, s.want, admitted[s.body], "%s: admitted for", s.body)
				}
			})
		})
	}
}
