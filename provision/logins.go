package provision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/commands"
)

// Bounds of the logins kept in memory.
const (
	// maxLogins bounds the logins kept at a time.
	maxLogins = 1000
	// loginLinger is how long a login is kept after its last step.
	loginLinger = 5 * time.Minute
	// maxWait bounds a poll's wait for a new step.
	maxWait = 30 * time.Second
)

// loginSession is one login started through the API: the newest step the
// flow sent, numbered, and who may see it.
type loginSession struct {
	id    string
	user  string
	ttl   time.Duration
	mu    sync.Mutex
	seq   int
	step  commands.Step
	at    time.Time
	ready chan struct{} // closed and replaced at every step
	now   func() time.Time
}

// push records a step of the flow (the front end's Request.Reply).
func (s *loginSession) push(_ context.Context, step commands.Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq > 0 && s.step.Final() {
		return
	}
	s.seq++
	s.step, s.at = step, s.now()
	close(s.ready)
	s.ready = make(chan struct{})
}

// first records the step Login returned unless the flow already sent a
// newer one (a QR code can come before Login returns).
func (s *loginSession) first(step commands.Step) {
	s.mu.Lock()
	seen := s.seq > 0
	s.mu.Unlock()
	if !seen {
		s.push(context.Background(), step)
	}
}

// snapshot returns the newest step and its number, and a channel closed at
// the next one.
func (s *loginSession) snapshot() (int, commands.Step, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, s.step, s.ready
}

// expired reports whether the session may be dropped: a final step older
// than loginLinger, or no step for the login's timeout plus loginLinger.
func (s *loginSession) expired(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq > 0 && s.step.Final() {
		return now.Sub(s.at) > loginLinger
	}
	return now.Sub(s.at) > s.ttl+loginLinger
}

// loginTable holds the sessions by ID.
type loginTable struct {
	mu  sync.Mutex
	m   map[string]*loginSession
	ttl time.Duration
	now func() time.Time
}

func newLoginTable(ttl time.Duration, now func() time.Time) *loginTable {
	return &loginTable{m: map[string]*loginSession{}, ttl: ttl, now: now}
}

// add makes a new session for user; nil when the table is full of logins
// that are still running.
func (t *loginTable) add(user string) *loginSession {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.m {
		if s.expired(now) {
			delete(t.m, id)
		}
	}
	if len(t.m) >= maxLogins {
		// Drop the oldest finished one, if any.
		var oldest *loginSession
		var oldestAt time.Time
		for _, s := range t.m {
			s.mu.Lock()
			final, at := s.seq > 0 && s.step.Final(), s.at
			s.mu.Unlock()
			if final && (oldest == nil || at.Before(oldestAt)) {
				oldest, oldestAt = s, at
			}
		}
		if oldest == nil {
			return nil
		}
		delete(t.m, oldest.id)
	}
	b := make([]byte, 18)
	rand.Read(b)
	s := &loginSession{id: base64.RawURLEncoding.EncodeToString(b), user: user, ttl: t.ttl,
		at: now, ready: make(chan struct{}), now: t.now}
	t.m[s.id] = s
	return s
}

// get returns user's session id (nil for another user's, an unknown or an
// expired one).
func (t *loginTable) get(id, user string) *loginSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.user != user {
		return nil
	}
	if s.expired(t.now()) {
		delete(t.m, id)
		return nil
	}
	return s
}

func (t *loginTable) remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}
