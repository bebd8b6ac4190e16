package safety

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// MaxReportMessages bounds `report with last N`.
const MaxReportMessages = 20

// maxReasonLength bounds the reason quoted in a report.
const maxReasonLength = 500

// ReportArgs is a parsed `report` command: `report [with last N] [reason]`.
type ReportArgs struct {
	// Last is how many of the contact's latest messages the reporter
	// explicitly included (0: none, the default).
	Last int
	// Reason is the reporter's own words, possibly empty.
	Reason string
}

// ErrReportUsage is returned by ParseReportArgs for a malformed
// `with last N`.
var ErrReportUsage = fmt.Errorf("usage: report [with last N] [reason] (N from 1 to %d)", MaxReportMessages)

// ParseReportArgs parses the arguments of `report`. Any words are a reason;
// only a leading "with last N [messages]" asks for message content.
func ParseReportArgs(args []string) (ReportArgs, error) {
	var r ReportArgs
	if len(args) >= 2 && strings.EqualFold(args[0], "with") && strings.EqualFold(args[1], "last") {
		if len(args) < 3 {
			return ReportArgs{}, ErrReportUsage
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 || n > MaxReportMessages {
			return ReportArgs{}, ErrReportUsage
		}
		r.Last = n
		args = args[3:]
		if len(args) > 0 && (strings.EqualFold(args[0], "messages") || strings.EqualFold(args[0], "message")) {
			args = args[1:]
		}
	}
	r.Reason = strings.Join(args, " ")
	if len(r.Reason) > maxReasonLength {
		cut := maxReasonLength
		for cut > 0 && !utf8Start(r.Reason[cut]) {
			cut--
		}
		r.Reason = r.Reason[:cut] + "…"
	}
	return r, nil
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// contact is the person on the other side of a user's room.
type contact struct {
	conv   bridge.ConversationID
	leg    bridge.Leg
	person string
	// name is how admins and the user see them: a pseudonym, never a number.
	name string
}

// contactsOf returns the contacts of the conversation a Matrix room
// belongs to (its non-Matrix legs).
func (s *Service) contactsOf(ctx context.Context, room string) ([]contact, error) {
	if s.opts.Legs == nil {
		return nil, ErrNoContact
	}
	conv, legs, err := s.opts.Legs(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(room)})
	if errors.Is(err, bridge.ErrUnknownLeg) {
		return nil, ErrNoContact
	} else if err != nil {
		return nil, err
	}
	var out []contact
	for _, leg := range legs {
		if leg.Network == bridge.NetworkMatrix {
			continue
		}
		person, sender, ok, err := s.store.legContact(ctx, string(leg.Network), string(leg.Chat))
		if err != nil {
			return nil, err
		}
		if !ok && s.opts.Contact != nil {
			who, found, err := s.opts.Contact(ctx, leg)
			if err != nil {
				return nil, err
			}
			if found {
				if person, err = s.opts.People(ctx, bridge.Address{Network: leg.Network, ID: string(who.ID)}); err != nil {
					return nil, err
				}
				sender, ok = string(who.ID), true
			}
		}
		if ok {
			out = append(out, contact{conv: conv, leg: leg, person: person, name: fmt.Sprintf("%s on %s", sender, leg.Network)})
		}
	}
	if len(out) == 0 {
		return nil, ErrNoContact
	}
	return out, nil
}

// Block is the `block` command of user in room: the user stops receiving
// from the room's contact on every network that person's verified
// identity links. The contact is not told.
func (s *Service) Block(ctx context.Context, user, room string) string {
	contacts, err := s.contactsOf(ctx, room)
	if errors.Is(err, ErrNoContact) {
		return "block works in a bridged room whose contact the bridge knows; use it in the room of the chat you want to block."
	} else if err != nil {
		s.log.Warn().Err(err).Msg("block: contact lookup failed")
		return "Could not block right now; please try again."
	}
	blocker := matrixKey(user)
	now := s.now()
	var names []string
	for _, c := range contacts {
		if err = s.store.exec(ctx, insertBlockQuery, blocker, c.person, ms(now)); err != nil {
			s.log.Warn().Err(err).Msg("block: failed to save")
			return "Could not block right now; please try again."
		}
		s.mu.Lock()
		if s.blocks[blocker] == nil {
			s.blocks[blocker] = map[string]bool{}
		}
		s.blocks[blocker][c.person] = true
		s.mu.Unlock()
		s.metrics.blocks.Inc()
		s.signal(ctx, c.person, sigBlocked, string(c.conv))
		s.decide(ctx, c.person, "block", user, "")
		s.evaluate(ctx, c.person)
		names = append(names, c.name)
	}
	return fmt.Sprintf("Blocked %s: you will no longer receive their messages, on any network their verified identity links. "+
		"They are not told. Messages already delivered stay.", strings.Join(names, ", "))
}

// Report is the `report [with last N] [reason]` command of user in room:
// the admins get the contact's pseudonym, message counts and times, and
// the reason — message content only with `with last N`, then only those N
// messages, taken from the room's history.
func (s *Service) Report(ctx context.Context, user, room string, args []string) string {
	ra, err := ParseReportArgs(args)
	if err != nil {
		return err.Error()
	}
	contacts, err := s.contactsOf(ctx, room)
	if errors.Is(err, ErrNoContact) {
		return "report works in a bridged room whose contact the bridge knows; use it in the room of the chat you want to report."
	} else if err != nil {
		s.log.Warn().Err(err).Msg("report: contact lookup failed")
		return "Could not send the report right now; please try again."
	}
	var included []HistoryMessage
	if ra.Last > 0 {
		if s.opts.History == nil {
			return "This bridge cannot include messages in reports; send `report` without `with last`."
		}
		if included, err = s.opts.History(ctx, room, ra.Last); err != nil {
			s.log.Warn().Err(err).Msg("report: reading room history failed")
			return "Could not read this room's history to include messages; send `report` without `with last`, or try again."
		}
	}
	since := s.now().Add(-s.window())
	var b strings.Builder
	for _, c := range contacts {
		s.metrics.reports.Inc()
		s.signal(ctx, c.person, sigReported, string(c.conv))
		s.decide(ctx, c.person, "report", user, fmt.Sprintf("included %d messages", len(included)))
		in, err := s.store.input(ctx, c.person, since)
		if err != nil {
			s.log.Warn().Err(err).Msg("report: reading signals failed")
		}
		n, first, last := s.act.stats(c.conv, c.person)
		fmt.Fprintf(&b, "🚩 Report from %s about %s (conversation %s).\n", user, c.name, c.conv)
		if n > 0 {
			fmt.Fprintf(&b, "Messages from them in this conversation recently: %d (first %s, last %s).\n", n, stamp(first), stamp(last))
		} else {
			b.WriteString("No recent messages from them in this conversation.\n")
		}
		fmt.Fprintf(&b, "In the last %s they were reported %d time(s) and blocked %d time(s).\n", windowText(s.window()), in.ReportsReceived, in.BlocksReceived)
		s.evaluate(ctx, c.person)
	}
	if ra.Reason != "" {
		fmt.Fprintf(&b, "Reason given by the reporter: %q\n", ra.Reason)
	}
	if ra.Last > 0 {
		fmt.Fprintf(&b, "The reporter chose to include the contact's last %d message(s) from the room (%d found):\n", ra.Last, len(included))
		for _, m := range included {
			fmt.Fprintf(&b, "• %s: %s\n", stamp(m.At), m.Body)
		}
	} else {
		b.WriteString("No message content is included.")
	}
	s.notifyAdmins(ctx, strings.TrimSuffix(b.String(), "\n"))
	answer := "Reported to the bridge admins. They see the contact's pseudonym, message counts and times"
	if ra.Reason != "" {
		answer += ", your reason"
	}
	if ra.Last > 0 {
		answer += fmt.Sprintf(", and the %d message(s) you chose to include", len(included))
	} else {
		answer += ", and no message content (`report with last 5` would include the contact's last 5 messages)"
	}
	return answer + ". Use `block` to stop receiving from them."
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

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
