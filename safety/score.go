package safety

import (
	"fmt"
	"strings"
)

// Input is everything the abuse score looks at: counts of metadata
// signals in the window (safety.signal_window). It deliberately has no
// field that could carry content — no text, no media, no phone number —
// and a test checks that it stays so.
type Input struct {
	// NewChats counts new conversations the person started.
	NewChats int
	// NewChatsRefused counts `start`s refused by new_chats_per_hour.
	NewChatsRefused int
	// Outbound counts messages the person sent; Unanswered those of them
	// in conversations where nobody else has written since.
	Outbound   int
	Unanswered int
	// BlocksReceived and ReportsReceived count other people's blocks and
	// reports of this person.
	BlocksReceived  int
	ReportsReceived int
	// Bursts counts refusals by the message rate limits.
	Bursts int
	// HighCost counts SMS to high-cost destinations; HighCostRefused those
	// refused by high_cost_per_hour.
	HighCost        int
	HighCostRefused int
	// Regions counts distinct destination countries reached by SMS.
	Regions int
}

// Weights of the score. A person reaches the default threshold (100) with,
// for example, four blocks, or five reports, or a burst of new chats far
// over the hourly limit, or a mostly unanswered mass mailing to many
// countries.
const (
	weightNewChat         = 2
	weightNewChatRefused  = 10
	weightBlock           = 25
	weightReport          = 20
	weightBurst           = 5
	weightHighCost        = 3
	weightHighCostRefused = 10
	weightRegion          = 5  // per region beyond freeRegions
	weightUnanswered      = 40 // times the unanswered share, once minOutbound is reached
	freeRegions           = 2
	minOutbound           = 10
)

// Score computes the abuse score of one person from metadata counts.
func Score(in Input) int {
	s := weightNewChat*in.NewChats +
		weightNewChatRefused*in.NewChatsRefused +
		weightBlock*in.BlocksReceived +
		weightReport*in.ReportsReceived +
		weightBurst*in.Bursts +
		weightHighCost*in.HighCost +
		weightHighCostRefused*in.HighCostRefused
	if in.Regions > freeRegions {
		s += weightRegion * (in.Regions - freeRegions)
	}
	if in.Outbound >= minOutbound && in.Unanswered > 0 {
		s += weightUnanswered * min(in.Unanswered, in.Outbound) / in.Outbound
	}
	return s
}

// Summary lists the non-zero signals, for admins.
func (in Input) Summary() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(in.NewChats, "new chats")
	add(in.NewChatsRefused, "new chats refused")
	if in.Outbound > 0 {
		parts = append(parts, fmt.Sprintf("%d sent (%d%% unanswered)", in.Outbound, 100*min(in.Unanswered, in.Outbound)/in.Outbound))
	}
	add(in.BlocksReceived, "blocks received")
	add(in.ReportsReceived, "reports received")
	add(in.Bursts, "rate-limit refusals")
	add(in.HighCost, "SMS to high-cost destinations")
	add(in.HighCostRefused, "high-cost SMS refused")
	add(in.Regions, "destination countries")
	if len(parts) == 0 {
		return "no signals"
	}
	return strings.Join(parts, ", ")
}
