package safety

import (
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// activity is recent per-conversation message metadata, kept in memory for
// the signal window: how many messages each person sent in each
// conversation and when, and whether anyone answered. It feeds the
// unanswered share of the score and the counts in reports. It holds no
// content; a restart starts it afresh.
type activity struct {
	mu    sync.Mutex
	convs map[bridge.ConversationID]*convActivity
}

type convActivity struct {
	last    time.Time
	senders map[string]*senderActivity
}

type senderActivity struct {
	count       int
	first, last time.Time
	// unanswered counts messages sent since another person last wrote.
	unanswered int
}

func newActivity() *activity {
	return &activity{convs: make(map[bridge.ConversationID]*convActivity)}
}

// note records a message from person in conv at t: it answers everyone
// else's messages in the conversation. It returns how many messages person
// sent in conv in the window.
func (a *activity) note(conv bridge.ConversationID, person string, t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.convs[conv]
	if c == nil {
		c = &convActivity{senders: make(map[string]*senderActivity)}
		a.convs[conv] = c
	}
	c.last = t
	for p, sa := range c.senders {
		if p != person {
			sa.unanswered = 0
		}
	}
	sa := c.senders[person]
	if sa == nil {
		sa = &senderActivity{first: t}
		c.senders[person] = sa
	}
	sa.count++
	sa.unanswered++
	sa.last = t
	return sa.count
}

// outbound returns how many messages person sent in the window, and how
// many of them nobody answered.
func (a *activity) outbound(person string) (sent, unanswered int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.convs {
		if sa := c.senders[person]; sa != nil {
			sent += sa.count
			unanswered += sa.unanswered
		}
	}
	return sent, unanswered
}

// stats returns what person sent in conv: count, first and last time.
func (a *activity) stats(conv bridge.ConversationID, person string) (int, time.Time, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.convs[conv]; c != nil {
		if sa := c.senders[person]; sa != nil {
			return sa.count, sa.first, sa.last
		}
	}
	return 0, time.Time{}, time.Time{}
}

// prune forgets conversations quiet since before cutoff.
func (a *activity) prune(cutoff time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, c := range a.convs {
		if c.last.Before(cutoff) {
			delete(a.convs, id)
		}
	}
}
