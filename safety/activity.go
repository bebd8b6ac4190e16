package safety

import (
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// activity is recent per-conversation message metadata for the signal
// window: how many messages each person sent in each conversation and
// when, and whether anyone answered. It feeds the unanswered share of the
// score and the counts in reports. It holds no content. It lives in
// memory, and the conversations that changed are written to
// sb_safety_activity every flushEvery and at Stop, so a restart keeps it.
type activity struct {
	mu    sync.Mutex
	convs map[bridge.ConversationID]*convActivity
	dirty map[bridge.ConversationID]bool
}

// activityRow is what a person sent in a conversation, as stored.
type activityRow struct {
	conv        bridge.ConversationID
	person      string
	count       int
	unanswered  int
	first, last time.Time
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
	return &activity{convs: make(map[bridge.ConversationID]*convActivity), dirty: make(map[bridge.ConversationID]bool)}
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
	a.dirty[conv] = true
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
			delete(a.dirty, id)
		}
	}
}

// takeDirty returns every sender's row of the conversations that changed
// since the last call (a message resets the others' unanswered counts),
// and marks them clean. On a failed write, markDirty puts them back.
func (a *activity) takeDirty() []activityRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rows []activityRow
	for id := range a.dirty {
		if c := a.convs[id]; c != nil {
			for p, sa := range c.senders {
				rows = append(rows, activityRow{conv: id, person: p, count: sa.count, unanswered: sa.unanswered, first: sa.first, last: sa.last})
			}
		}
		delete(a.dirty, id)
	}
	return rows
}

// markDirty marks the conversations of rows as changed again.
func (a *activity) markDirty(rows []activityRow) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rows {
		a.dirty[r.conv] = true
	}
}

// load puts stored rows back, as at start.
func (a *activity) load(rows []activityRow) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rows {
		c := a.convs[r.conv]
		if c == nil {
			c = &convActivity{senders: make(map[string]*senderActivity)}
			a.convs[r.conv] = c
		}
		c.senders[r.person] = &senderActivity{count: r.count, unanswered: r.unanswered, first: r.first, last: r.last}
		if r.last.After(c.last) {
			c.last = r.last
		}
	}
}
