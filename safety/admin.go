package safety

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Admin is the `admin suspend @user|unsuspend @user|flags|status` command
// (the command table already checked the syntax and the admin level).
func (s *Service) Admin(ctx context.Context, admin string, args []string) string {
	if len(args) == 0 {
		return "Usage: admin suspend @user|unsuspend @user|flags|status"
	}
	switch strings.ToLower(args[0]) {
	case "flags":
		return s.flags(ctx)
	case "status":
		return s.status(ctx)
	case "suspend", "unsuspend":
		if len(args) != 2 || !strings.HasPrefix(args[1], "@") {
			return "Usage: admin suspend @user|unsuspend @user|flags|status"
		}
		user := args[1]
		if strings.EqualFold(args[0], "suspend") {
			in, _ := s.Input(ctx, matrixKey(user))
			score := Score(in)
			ok, err := s.Suspend(ctx, user, admin, "suspended by an admin", score)
			switch {
			case err != nil:
				return "Could not suspend right now; please try again."
			case !ok:
				return user + " is already suspended."
			}
			return fmt.Sprintf("Suspended %s (score %d). They were told; `admin unsuspend %s` lifts it.", user, score, user)
		}
		ok, err := s.Unsuspend(ctx, user, admin)
		switch {
		case err != nil:
			return "Could not unsuspend right now; please try again."
		case !ok:
			return user + " is not suspended."
		}
		return "Lifted the suspension of " + user + "; they were told."
	}
	return "Usage: admin suspend @user|unsuspend @user|flags|status"
}

type flag struct {
	subject string
	score   int
	in      Input
}

func (s *Service) flags(ctx context.Context) string {
	subjects, err := s.store.subjects(ctx, s.now().Add(-s.window()))
	if err != nil {
		return "Could not read the signals right now; please try again."
	}
	var flags []flag
	for _, subj := range subjects {
		in, err := s.Input(ctx, subj)
		if err != nil {
			return "Could not read the signals right now; please try again."
		}
		flags = append(flags, flag{subj, Score(in), in})
	}
	if len(flags) == 0 {
		return fmt.Sprintf("No abuse signals in the last %s.", windowText(s.window()))
	}
	slices.SortFunc(flags, func(a, b flag) int {
		if a.score != b.score {
			return b.score - a.score
		}
		return strings.Compare(a.subject, b.subject)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "Abuse signals in the last %s (metadata only; suspension at score %d):\n", windowText(s.window()), s.cfg.SuspendScore)
	for i, f := range flags {
		if i == 20 {
			fmt.Fprintf(&b, "… and %d more\n", len(flags)-i)
			break
		}
		mark := ""
		if u, ok := userOfKey(f.subject); ok && s.IsSuspended(u) {
			mark = " [suspended]"
		}
		fmt.Fprintf(&b, "• %s — score %d%s — %s\n", displayKey(f.subject), f.score, mark, f.in.Summary())
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (s *Service) status(ctx context.Context) string {
	sus, err := s.store.suspensions(ctx)
	if err != nil {
		return "Could not read the safety status right now; please try again."
	}
	var blocks int
	if err = s.store.db.QueryRow(ctx, countBlocksQuery).Scan(&blocks); err != nil {
		return "Could not read the safety status right now; please try again."
	}
	kinds, err := s.store.kindCounts(ctx, s.now().Add(-s.window()))
	if err != nil {
		return "Could not read the safety status right now; please try again."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Safety status: %d user(s) suspended, %d block(s) in force.\n", len(sus), blocks)
	for _, su := range sus {
		fmt.Fprintf(&b, "• %s suspended %s (score %d): %s\n", su.User, stamp(su.At), su.Score, su.Reason)
	}
	fmt.Fprintf(&b, "Last %s: %d new chats (%d refused), %d rate-limit refusals, %d reports, %d blocks, %d high-cost SMS (%d refused).\n",
		windowText(s.window()), kinds[sigNewChat], kinds[sigNewChatRefused], kinds[sigBurst], kinds[sigReported], kinds[sigBlocked],
		kinds[sigHighCost], kinds[sigHighCostRefused])
	c := s.cfg
	fmt.Fprintf(&b, "Limits: %d new chats/hour, %d msgs/min per sender, %d per conversation, %d per inbound contact, "+
		"SMS every %s per pool number, %d high-cost SMS/hour; suspension at score %d.",
		c.NewChatsPerHour, c.SenderPerMinute, c.ConversationPerMinute, c.InboundPerMinute,
		c.SMSSegmentInterval.Std(), c.HighCostPerHour, c.SuspendScore)
	return b.String()
}

// Whoami returns the lines `whoami` adds for a user.
func (s *Service) Whoami(_ context.Context, user string) []string {
	if s.IsSuspended(user) {
		return []string{"Safety: your use of the bridge is suspended pending admin review."}
	}
	s.mu.RLock()
	n := len(s.blocks[matrixKey(user)])
	s.mu.RUnlock()
	if n > 0 {
		return []string{fmt.Sprintf("Safety: you blocked %d contact(s).", n)}
	}
	return nil
}
