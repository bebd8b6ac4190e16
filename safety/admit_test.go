package safety_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/safety"
)

var (
	roomA  = bridge.Leg{Network: bridge.NetworkMatrix, Chat: "!a:example.org"}
	roomB  = bridge.Leg{Network: bridge.NetworkMatrix, Chat: "!b:example.org"}
	smsA   = bridge.Leg{Network: bridge.NetworkSMS, Chat: "sms-chat-a"}
	smsB   = bridge.Leg{Network: bridge.NetworkSMS, Chat: "sms-chat-b"}
	alice  = bridge.UserID("@alice:example.org")
	bob    = bridge.UserID("@bob:example.org")
	phoneX = bridge.UserID("sms_contactx")
)

// TestAdmitRateLimits drives each message limit on a fake clock: the
// refusal names the limit and the wait, repeats within a burst are marked
// (so SMS tells the contact once), and the limit frees up with time.
func TestAdmitRateLimits(t *testing.T) {
	type send struct {
		after  time.Duration
		leg    bridge.Leg
		conv   bridge.ConversationID
		sender bridge.UserID
		// refused names the limit that refuses it ("" = accepted).
		refused safety.Limit
		repeat  bool
	}
	for _, tc := range []struct {
		name              string
		sender, conv, inb int
		sends             []send
	}{
		{"per sender, across conversations", 2, 0, 0, []send{
			{0, roomA, "c1", alice, "", false},
			{0, roomB, "c2", alice, "", false},
			{0, roomA, "c1", alice, safety.LimitSender, false},
			{time.Second, roomB, "c2", alice, safety.LimitSender, true},
			{time.Second, roomA, "c1", bob, "", false}, // another sender
			{30 * time.Second, roomA, "c1", alice, "", false},
		}},
		{"per conversation, all senders together", 0, 3, 0, []send{
			{0, roomA, "c1", alice, "", false},
			{0, roomA, "c1", bob, "", false},
			{0, smsA, "c1", phoneX, "", false},
			{0, roomA, "c1", alice, safety.LimitConversation, false},
			{0, roomB, "c2", alice, "", false}, // another conversation
			{20 * time.Second, roomA, "c1", bob, "", false},
		}},
		{"per inbound contact, not for Matrix users", 0, 0, 1, []send{
			{0, smsA, "c1", phoneX, "", false},
			{0, smsB, "c2", phoneX, safety.LimitInbound, false},
			{0, roomA, "c1", alice, "", false},
			{0, roomA, "c1", alice, "", false},
			{time.Minute, smsB, "c2", phoneX, "", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultSafety()
			cfg.SenderPerMinute, cfg.ConversationPerMinute, cfg.InboundPerMinute = tc.sender, tc.conv, tc.inb
			e := startEnv(t, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, cfg)
			for i, s := range tc.sends {
				e.clock.Advance(s.after)
				err := e.svc.Admit(context.Background(), admission(message(s.leg, s.sender, "m"), s.conv, roomA))
				if s.refused == "" {
					require.NoError(t, err, "send %d", i)
					continue
				}
				require.ErrorIs(t, err, bridge.ErrRefused, "send %d", i)
				var re *bridge.RefusedError
				require.ErrorAs(t, err, &re)
				var le *safety.LimitError
				require.ErrorAs(t, err, &le)
				require.Equal(t, s.refused, le.Limit, "send %d", i)
				require.Equal(t, s.repeat, re.Repeat, "send %d", i)
				require.Positive(t, re.RetryAfter)
				require.Contains(t, re.Reason, "too many messages")
				require.Contains(t, re.Reason, "wait")
			}
		})
	}
}

// TestSuspendedUserCannotSend: a suspended user's messages, edits,
// reactions and changes to a chat are refused with a notice; admins lift
// it; the user is told both times.
func TestSuspendedUserCannotSend(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := startEnv(t, dbo, defaultSafety())
		ctx := context.Background()
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"suspend", string(alice)}), "Suspended @alice:example.org")
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"suspend", string(alice)}), "already suspended")
		require.True(t, e.svc.IsSuspended(string(alice)))
		require.Len(t, e.note.user(string(alice)), 1)

		for _, kind := range []bridge.Kind{bridge.KindMessage, bridge.KindEdit, bridge.KindReaction, bridge.KindChatInfo} {
			evt := message(roomA, alice, "s-"+string(kind))
			evt.Kind = kind
			if kind == bridge.KindChatInfo {
				// Renaming a group, or removing its members, is sending too.
				name := "renamed"
				evt.Content, evt.ChatInfo = nil, &bridge.ChatInfo{Name: &name, Shared: true}
			}
			err := e.svc.Admit(ctx, admission(evt, "c1", smsA))
			require.ErrorIs(t, err, bridge.ErrRefused, "%s", kind)
			require.ErrorIs(t, err, safety.ErrSuspended, "%s", kind)
		}
		// Deleting one's own messages stays possible.
		del := message(roomA, alice, "d")
		del.Kind, del.Target = bridge.KindDelete, "m1"
		require.NoError(t, e.svc.Admit(ctx, admission(del, "c1", smsA)))
		require.NoError(t, e.svc.Admit(ctx, admission(message(roomB, bob, "b1"), "c2", smsB)), "others are not affected")
		require.ErrorIs(t, e.svc.NewChatGate(ctx, string(alice), bridge.NetworkSMS), safety.ErrSuspended, "no new chats either")
		require.Equal(t, []string{"Safety: your use of the bridge is suspended pending admin review."}, e.svc.Whoami(ctx, string(alice)))
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"status"}), "1 user(s) suspended")

		// The suspension survives a restart (it is stored).
		restarted := startEnvOn(t, e)
		require.True(t, restarted.IsSuspended(string(alice)))

		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"unsuspend", string(alice)}), "Lifted")
		require.Contains(t, e.svc.Admin(ctx, "@admin:example.org", []string{"unsuspend", string(alice)}), "not suspended")
		require.NoError(t, e.svc.Admit(ctx, admission(message(roomA, alice, "after"), "c1", smsA)))
		require.Len(t, e.note.user(string(alice)), 2)
		require.Equal(t, 1.0, e.counter(t, "switchboard_safety_suspensions_total", map[string]string{"by": "admin"}))
	})
}

// startEnvOn starts a second service on the same database, as after a restart.
func startEnvOn(t *testing.T, e *env) *safety.Service {
	svc, err := safety.New(safety.Options{DB: e.db, Config: defaultSafety(), People: e.ident.PersonKey, Now: e.clock.Now})
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	t.Cleanup(svc.Stop)
	return svc
}
