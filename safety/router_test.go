package safety_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/safety"
)

// TestBlockAcrossNetworks: the same person (one identity.Store.PersonKey)
// writes to alice from SMS and from WhatsApp, in two conversations. Alice
// blocks them in one room; through the real router, neither network's
// messages reach her any more, while another contact's still do and her
// own messages still go out. Suspended and over-limit senders are refused
// at admission and nothing is queued for them.
func TestBlockAcrossNetworks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		if dbo.URI == ":memory:" {
			dbo = dbtest.SQLite(t) // the router and the service share a file database
		}
		ctx := context.Background()
		mx := bridgetest.NewLoopback(bridge.NetworkMatrix)
		smsNet := bridgetest.NewLoopback(bridge.NetworkSMS)
		wa := bridgetest.NewLoopback(bridge.NetworkWhatsApp)
		var router *bridge.Router
		owners := map[bridge.ChatID]string{"!sms-room": string(alice), "!wa-room": string(alice), "!other-room": string(alice)}
		cfg := defaultSafety()
		cfg.SenderPerMinute = 5
		e := startEnv(t, dbo, cfg, func(o *safety.Options) {
			o.LegOwner = func(_ context.Context, leg bridge.Leg) (string, error) {
				if leg.Network != bridge.NetworkMatrix {
					return "", nil
				}
				return owners[leg.Chat], nil
			}
			o.Legs = func(ctx context.Context, leg bridge.Leg) (bridge.ConversationID, []bridge.Leg, error) {
				conv, err := router.ConversationOf(ctx, leg)
				if err != nil {
					return "", nil, err
				}
				legs, err := router.Legs(ctx, conv)
				return conv, legs, err
			}
		})
		var err error
		router, err = bridge.New(bridge.Options{DB: e.db, Secret: []byte("0123456789abcdef0123456789abcdef"), Log: zerolog.Nop(),
			RetryBase: 10 * time.Millisecond, PollInterval: 50 * time.Millisecond, Admitter: e.svc})
		require.NoError(t, err)
		for _, c := range []*bridgetest.Loopback{mx, smsNet, wa} {
			require.NoError(t, router.Register(c))
		}
		require.NoError(t, router.Start(ctx))
		t.Cleanup(func() { _ = router.Stop(context.Background()) })

		leg := func(n bridge.NetworkID, chat string) bridge.Leg {
			return bridge.Leg{Network: n, Chat: bridge.ChatID(chat)}
		}
		_, err = router.CreateConversation(ctx, leg(bridge.NetworkMatrix, "!sms-room"), leg(bridge.NetworkSMS, "sms-chat"))
		require.NoError(t, err)
		_, err = router.CreateConversation(ctx, leg(bridge.NetworkMatrix, "!wa-room"), leg(bridge.NetworkWhatsApp, "wa-chat"))
		require.NoError(t, err)
		_, err = router.CreateConversation(ctx, leg(bridge.NetworkMatrix, "!other-room"), leg(bridge.NetworkWhatsApp, "wa-other"))
		require.NoError(t, err)

		// The same unlinked phone contact on both networks has one pseudonym,
		// so one person key ("phone:ph_…").
		require.NoError(t, e.ident.SetSecret([]byte("0123456789abcdef0123456789abcdef")))
		const sameNumber, otherNumber = "+14155550123", "+14155550124"
		same, other := e.ident.Pseudonyms().Phone(sameNumber).ID, e.ident.Pseudonyms().Phone(otherNumber).ID
		link := func(owner, number string) {
			t.Helper()
			addr := bridge.Address{Network: bridge.NetworkMatrix, ID: owner}
			v := e.ident.Verifier(e.ident.Vault())
			code, err := v.Start(ctx, addr, number)
			require.NoError(t, err)
			_, err = v.Confirm(ctx, addr, code)
			require.NoError(t, err)
		}
		k1, err := e.ident.PersonKey(ctx, bridge.Address{Network: bridge.NetworkSMS, ID: string(same)})
		require.NoError(t, err)
		k2, err := e.ident.PersonKey(ctx, bridge.Address{Network: bridge.NetworkWhatsApp, ID: string(same)})
		require.NoError(t, err)
		require.Equal(t, k1, k2)

		send := func(c *bridgetest.Loopback, chat string, sender bridge.UserID, id string) error {
			return c.Receive(ctx, &bridge.Event{Kind: bridge.KindMessage, Source: leg(c.Network(), chat), SourceID: bridge.RemoteID(id),
				Sender: bridge.Sender{ID: sender}, Content: &bridge.Content{Type: bridge.MsgText, Body: id}})
		}
		require.NoError(t, send(smsNet, "sms-chat", same, "before block (sms)"))
		mx.WaitSent(1, 5*time.Second)

		require.Contains(t, e.svc.Block(ctx, string(alice), "!sms-room"), "Blocked "+string(same)+" on sms")

		for _, tc := range []struct {
			name      string
			from      *bridgetest.Loopback
			chat      string
			sender    bridge.UserID
			delivered bool
		}{
			{"blocked on the network of the room", smsNet, "sms-chat", same, false},
			{"blocked on another network too", wa, "wa-chat", same, false},
			{"another contact still reaches her", wa, "wa-other", other, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				require.NoError(t, send(tc.from, tc.chat, tc.sender, tc.name), "the blocked contact is not refused (not told)")
			})
		}
		// Linking or unlinking a number later does not lift a block: the
		// blocked contact links theirs to a Matrix account...
		link("@carol:example.org", sameNumber)
		require.NoError(t, send(smsNet, "sms-chat", same, "after linking"))
		// ...and a contact blocked while linked unlinks.
		link("@dave:example.org", otherNumber)
		require.Contains(t, e.svc.Block(ctx, string(alice), "!other-room"), "Blocked")
		_, err = e.ident.Unlink(ctx, bridge.Address{Network: bridge.NetworkMatrix, ID: "@dave:example.org"}, otherNumber)
		require.NoError(t, err)
		require.NoError(t, send(wa, "wa-other", other, "after unlinking"))

		// Alice's own messages still go out to the blocked contact.
		require.NoError(t, send(mx, "!sms-room", alice, "alice writes"))
		require.Eventually(t, func() bool { n, _ := router.QueueDepth(ctx); return n == 0 && len(smsNet.Sent()) == 1 }, 5*time.Second, 10*time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		require.Equal(t, []string{"before block (sms)", "another contact still reaches her"}, sentBodies(mx))

		// A suspended sender is refused at admission, and nothing is queued.
		_, err = e.svc.Suspend(ctx, string(alice), "@admin:example.org", "test", 0)
		require.NoError(t, err)
		err = send(mx, "!sms-room", alice, "while suspended")
		require.ErrorIs(t, err, bridge.ErrRefused)
		n, err := router.QueueDepth(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, smsNet.Sent(), 1)
	})
}

func sentBodies(c *bridgetest.Loopback) []string {
	var out []string
	for _, s := range c.Sent() {
		out = append(out, s.Delivery.Event.Content.Body)
	}
	return out
}

// BenchmarkAdmit measures the safety service's admission of one message
// (person key, rate limits, activity), the steady state: no block, under
// every limit.
//
//	go test -run '^$' -bench Admit ./safety
func BenchmarkAdmit(b *testing.B) {
	cfg := defaultSafety()
	cfg.SenderPerMinute, cfg.ConversationPerMinute, cfg.InboundPerMinute = 1<<30, 1<<30, 1<<30
	e := startEnv(b, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, cfg, func(o *safety.Options) {
		o.LegOwner = func(context.Context, bridge.Leg) (string, error) { return string(alice), nil }
	})
	ctx := context.Background()
	evts := make([]*bridge.Admission, 64)
	for i := range evts {
		evts[i] = admission(message(roomA, bridge.UserID("@u"+string(rune('a'+i%26))+":example.org"), "m"), bridge.ConversationID("c"+string(rune('a'+i))), smsA)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.svc.Admit(ctx, evts[i%len(evts)]); err != nil {
			b.Fatal(err)
		}
	}
}
