package safety

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
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
	return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
}
