package safety

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// decide logs and records a decision. detail never holds content or a
// phone number: only limits, counts, scores and pseudonyms.
func (s *Service) decide(ctx context.Context, subject, action, actor, detail string) {
	s.log.Info().Str("subject", subject).Str("action", action).Str("actor", actor).Str("detail", detail).Msg("Safety decision")
	if err := s.store.decision(ctx, subject, action, actor, detail, s.now()); err != nil {
		s.log.Warn().Err(err).Msg("Failed to record safety decision")
	}
}

// notifyAdmins sends text to the admin room, or to each admin directly.
func (s *Service) notifyAdmins(ctx context.Context, text string) {
	n := s.opts.Notifier
	if n == nil {
		return
	}
	if room := s.cfg.AdminRoom; room != "" {
		n.NotifyRoom(ctx, room, text)
		return
	}
	if len(s.opts.Admins) == 0 {
		s.log.Warn().Msg("A safety flag has nobody to go to: set safety.admin_room or give a user admin permission")
		return
	}
	for _, admin := range s.opts.Admins {
		if err := n.NotifyUser(ctx, admin, text); err != nil {
			s.log.Warn().Err(err).Str("admin", admin).Msg("Failed to notify admin")
		}
	}
}

func (s *Service) notifyUser(ctx context.Context, user, text string) {
	if s.opts.Notifier == nil {
		return
	}
	if err := s.opts.Notifier.NotifyUser(ctx, user, text); err != nil {
		s.log.Warn().Err(err).Str("user", user).Msg("Failed to notify user")
	}
}

// flagOnce reports whether admins should be told about key now (once per
// hour per key).
func (s *Service) flagOnce(key string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.flagged[key]; ok && now.Sub(at) < time.Hour {
		return false
	}
	s.flagged[key] = now
	return true
}

// matrixKey is the person key of a Matrix user.
func matrixKey(user string) string { return string(bridge.NetworkMatrix) + ":" + user }

// userOfKey returns the Matrix user of a person key, if it is one.
func userOfKey(key string) (string, bool) {
	return strings.CutPrefix(key, string(bridge.NetworkMatrix)+":")
}

// displayKey shows a person key to admins: a Matrix user ID, or the
// contact's pseudonym with its network.
func displayKey(key string) string {
	if u, ok := userOfKey(key); ok {
		return u
	}
	network, id, ok := strings.Cut(key, ":")
	if !ok {
		return key
	}
	return fmt.Sprintf("%s (%s)", id, network)
}

// FlagAdmins tells the admins text (admin room, else each admin directly)
// at most once an hour per key, for events other parts of the bridge see
// (a stranger writing to the WhatsApp relay account, say). text must hold
// no message content and no phone number.
func (s *Service) FlagAdmins(ctx context.Context, key, text string) {
	if s.flagOnce("flag:" + key) {
		s.notifyAdmins(ctx, text)
	}
}
