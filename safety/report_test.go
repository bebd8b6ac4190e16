package safety_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/safety"
)

// TestBlockAndReport: `report` gives the admins the contact's pseudonym,
// counts and times and no content — unless the reporter asks for `with
// last N`, and then only those N messages, read from the room's history;
// `block` keeps the contact's messages from the user's leg.
func TestBlockAndReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		var mu sync.Mutex
		var historyAsked []int
		cfg := defaultSafety()
		cfg.AdminRoom = adminRoom
		e := startEnv(t, dbo, cfg, func(o *safety.Options) {
			o.Legs = func(_ context.Context, leg bridge.Leg) (bridge.ConversationID, []bridge.Leg, error) {
				switch leg {
				case roomA:
					return "c1", []bridge.Leg{roomA, smsA}, nil
				case roomB:
					return "c2", []bridge.Leg{roomB, smsB}, nil
				}
				return "", nil, bridge.ErrUnknownLeg
			}
			o.LegOwner = func(_ context.Context, leg bridge.Leg) (string, error) {
				if leg == roomA || leg == roomB {
					return string(alice), nil
				}
				return "", nil
			}
			o.Contact = func(_ context.Context, leg bridge.Leg) (bridge.Sender, bool, error) {
				if leg == smsB {
					return bridge.Sender{ID: "sms_contacty"}, true, nil
				}
				return bridge.Sender{}, false, nil
			}
			o.History = func(_ context.Context, room string, n int) ([]safety.HistoryMessage, error) {
				mu.Lock()
				historyAsked = append(historyAsked, n)
				mu.Unlock()
				require.Equal(t, string(roomA.Chat), room)
				all := []safety.HistoryMessage{
					{At: time.Date(2026, 11, 26, 8, 1, 0, 0, time.UTC), Body: "buy cheap pills"},
					{At: time.Date(2026, 11, 26, 8, 2, 0, 0, time.UTC), Body: "click this link"},
				}
				return all[len(all)-min(n, len(all)):], nil
			}
		})
		ctx := context.Background()
		user := string(alice)

		// The contact writes three times; only metadata is kept.
		for i := range 3 {
			require.NoError(t, e.svc.Admit(ctx, admission(message(smsA, phoneX, "in"+string(rune('0'+i))), "c1", roomA)))
			e.clock.Advance(time.Minute)
		}

		for _, tc := range []struct {
			name   string
			room   bridge.Leg
			args   []string
			answer []string
			admin  []string
			absent []string
			asked  int
		}{
			{"no content by default", roomA, nil,
				[]string{"Reported", "no message content"},
				[]string{"Report from @alice:example.org", "sms_contactx on sms", "recently: 3", "26 Nov 2026 08:00:00 UTC", "08:02:00", "No message content is included"},
				[]string{"secret body", "pills", "Reason given"}, 0},
			{"a reason is quoted", roomA, []string{"keeps", "texting", "me"},
				[]string{"your reason"},
				[]string{`Reason given by the reporter: "keeps texting me"`, "reported 2 time(s)"},
				[]string{"secret body", "pills"}, 0},
			{"with last 1: only that message", roomA, []string{"with", "last", "1", "spam"},
				[]string{"the 1 message(s) you chose to include"},
				[]string{"last 1 message(s)", "click this link", `"spam"`},
				[]string{"buy cheap pills", "secret body"}, 1},
			{"contact known from the connector before they wrote", roomB, nil,
				[]string{"Reported"}, []string{"sms_contacty on sms", "No recent messages"}, nil, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(e.note.room(adminRoom))
				answer := e.svc.Report(ctx, user, string(tc.room.Chat), tc.args)
				containsAll(t, answer, tc.answer...)
				notes := e.note.room(adminRoom)
				require.Len(t, notes, before+1)
				containsAll(t, notes[before], tc.admin...)
				for _, a := range tc.absent {
					require.NotContains(t, notes[before], a)
				}
				mu.Lock()
				if tc.asked > 0 {
					require.Equal(t, tc.asked, historyAsked[len(historyAsked)-1])
				}
				mu.Unlock()
			})
		}
		require.Contains(t, e.svc.Report(ctx, user, string(roomA.Chat), []string{"with", "last", "0"}), "usage")
		require.Contains(t, e.svc.Report(ctx, user, "!dm:example.org", nil), "bridged room")
		require.Equal(t, 4.0, e.counter(t, "switchboard_safety_reports_total", nil))

		// Block: the contact's messages no longer reach alice's room; the
		// sender is not refused (they are not told).
		require.Contains(t, e.svc.Block(ctx, user, string(roomA.Chat)), "Blocked sms_contactx on sms")
		a := admission(message(smsA, phoneX, "after"), "c1", roomA)
		require.NoError(t, e.svc.Admit(ctx, a))
		require.True(t, a.Excluded(roomA))
		other := admission(message(smsB, "sms_contacty", "y1"), "c2", roomB)
		require.NoError(t, e.svc.Admit(ctx, other))
		require.False(t, other.Excluded(roomB))
		require.Equal(t, []string{"Safety: you blocked 1 contact(s)."}, e.svc.Whoami(ctx, user))
		require.Equal(t, 1.0, e.counter(t, "switchboard_safety_blocks_total", nil))
		require.Equal(t, 1.0, e.counter(t, "switchboard_safety_blocked_deliveries_total", nil))

		flags := e.svc.Admin(ctx, "@admin:example.org", []string{"flags"})
		containsAll(t, flags, "sms_contactx (sms) — score 85", "3 reports received", "1 blocks received")
		status := e.svc.Admin(ctx, "@admin:example.org", []string{"status"})
		containsAll(t, status, "1 block(s) in force", "4 reports", "1 blocks")

		// Unblock: the contact reaches alice again.
		require.Contains(t, e.svc.Unblock(ctx, user, string(roomA.Chat)), "Unblocked sms_contactx on sms")
		a = admission(message(smsA, phoneX, "after unblock"), "c1", roomA)
		require.NoError(t, e.svc.Admit(ctx, a))
		require.False(t, a.Excluded(roomA))
		require.Contains(t, e.svc.Unblock(ctx, user, string(roomA.Chat)), "have not blocked")

		// Nothing the safety tables hold is content.
		for _, table := range []string{"sb_safety_signal", "sb_safety_decision", "sb_safety_block", "sb_safety_leg_contact"} {
			rows, err := e.db.Query(ctx, "SELECT * FROM "+table)
			require.NoError(t, err)
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				require.NoError(t, rows.Scan(ptrs...))
				for _, v := range vals {
					s, _ := v.(string)
					if b, ok := v.([]byte); ok {
						s = string(b)
					}
					require.False(t, strings.Contains(s, "secret body") || strings.Contains(s, "pills") || strings.Contains(s, "link"), "%s holds %q", table, s)
				}
			}
			rows.Close()
		}
	})
}

// TestPurgeKeepsMetadataNoLongerThanRetention: signals and decisions go
// after retention.metadata (48h here); blocks and suspensions stay.
func TestPurgeKeepsMetadataNoLongerThanRetention(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := startEnv(t, dbo, defaultSafety())
		ctx := context.Background()
		require.NoError(t, e.svc.NewChatGate(ctx, string(alice), bridge.NetworkSMS))
		_, _ = e.svc.Suspend(ctx, string(bob), "@admin:example.org", "test", 0)
		count := func(table string) int {
			var n int
			require.NoError(t, e.db.QueryRow(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
			return n
		}
		require.Equal(t, 1, count("sb_safety_signal"))
		require.Equal(t, 1, count("sb_safety_decision"))
		e.clock.Advance(47 * time.Hour)
		require.NoError(t, e.svc.Purge(ctx))
		require.Equal(t, 1, count("sb_safety_signal"))
		e.clock.Advance(2 * time.Hour)
		require.NoError(t, e.svc.Purge(ctx))
		require.Zero(t, count("sb_safety_signal"))
		require.Zero(t, count("sb_safety_decision"))
		require.Equal(t, 1, count("sb_safety_suspension"))
	})
}

func FuzzParseReportArgs(f *testing.F) {
	for _, seed := range []string{"", "spam", "with last 5", "with last 5 messages because", "WITH LAST 20", "with last", "with last x", "with last -1", "with last 99999999999999999999", "with", "wïth läst 3 ünïcode"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		r, err := safety.ParseReportArgs(args)
		if err != nil {
			require.ErrorIs(t, err, safety.ErrReportUsage)
			return
		}
		require.GreaterOrEqual(t, r.Last, 0)
		require.LessOrEqual(t, r.Last, safety.MaxReportMessages)
		require.LessOrEqual(t, len(r.Reason), 500+len("…"))
		if r.Last == 0 {
			require.True(t, strings.HasPrefix(strings.Join(args, " "), strings.TrimSuffix(r.Reason, "…")), "the reason is the words typed")
		}
	})
}

func TestParseReportArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want safety.ReportArgs
		err  bool
	}{
		{"", safety.ReportArgs{}, false},
		{"spam and threats", safety.ReportArgs{Reason: "spam and threats"}, false},
		{"with last 5", safety.ReportArgs{Last: 5}, false},
		{"With Last 3 messages harassment", safety.ReportArgs{Last: 3, Reason: "harassment"}, false},
		{"with love", safety.ReportArgs{Reason: "with love"}, false},
		{"with last", safety.ReportArgs{}, true},
		{"with last 0", safety.ReportArgs{}, true},
		{"with last 21", safety.ReportArgs{}, true},
		{"with last five", safety.ReportArgs{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := safety.ParseReportArgs(strings.Fields(tc.in))
			if tc.err {
				require.ErrorIs(t, err, safety.ErrReportUsage)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
