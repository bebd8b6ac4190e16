package safety

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// NewChatGate decides whether a Matrix user may start a new conversation
// (the Gate of `start`'s routing, matrix.StartOptions; called only when `start` would
// create one). Over safety.new_chats_per_hour it refuses with the reason,
// records a signal and flags the user to the admins (once an hour).
func (s *Service) NewChatGate(ctx context.Context, user string, network bridge.NetworkID) error {
	if s.IsSuspended(user) {
		return ErrSuspended
	}
	subject := matrixKey(user)
	now := s.now()
	if limit := s.cfg.NewChatsPerHour; limit > 0 {
		n, oldest, err := s.store.count(ctx, subject, sigNewChat, now.Add(-time.Hour))
		if err != nil {
			return err
		}
		if n >= limit {
			wait := max(oldest.Add(time.Hour).Sub(now), time.Second)
			s.metrics.throttles.WithLabelValues(string(LimitNewChats)).Inc()
			s.signal(ctx, subject, sigNewChatRefused, string(network))
			s.decide(ctx, subject, "throttle", "", fmt.Sprintf("new_chats_per_hour %d reached", limit))
			if s.flagOnce(subject + "\x00" + string(LimitNewChats)) {
				s.notifyAdmins(ctx, fmt.Sprintf("🚩 %s tried to start more than %d new chats in an hour (safety.new_chats_per_hour); "+
					"further new chats are refused until the hour has passed.", user, limit))
			}
			s.evaluate(ctx, subject)
			return &LimitError{Limit: LimitNewChats, Max: limit, Per: time.Hour, RetryAfter: wait}
		}
	}
	s.signal(ctx, subject, sigNewChat, string(network))
	s.evaluate(ctx, subject)
	return nil
}

// SMSSend describes one SMS about to be sent, as the SMS connector sees it:
// who sent the message (on its source network), and where it goes (the
// destination's region and whether it matches safety.high_cost_prefixes
// — never the number).
type SMSSend struct {
	Sender        bridge.UserID
	SenderNetwork bridge.NetworkID
	Conversation  bridge.ConversationID
	Region        string
	HighCost      bool
}

// CheckSMS is the SMS connector's send hook: it records the destination
// region and, for high-cost destinations, enforces
// safety.high_cost_per_hour per sender. A refusal is permanent for that
// message (the sender is told why) and flags the sender to the admins.
func (s *Service) CheckSMS(ctx context.Context, send SMSSend) error {
	if send.Sender == "" {
		return nil
	}
	subject, err := s.opts.People(ctx, bridge.Address{Network: send.SenderNetwork, ID: string(send.Sender)})
	if err != nil {
		return err
	}
	now := s.now()
	if send.Region != "" {
		key := subject + "\x00" + send.Region
		s.mu.Lock()
		_, seen := s.regions[key]
		s.regions[key] = now
		s.mu.Unlock()
		if !seen {
			s.signal(ctx, subject, sigRegion, send.Region)
		}
	}
	if !send.HighCost {
		return nil
	}
	if limit := s.cfg.HighCostPerHour; limit > 0 {
		n, oldest, err := s.store.count(ctx, subject, sigHighCost, now.Add(-time.Hour))
		if err != nil {
			return err
		}
		if n >= limit {
			wait := max(oldest.Add(time.Hour).Sub(now), time.Second)
			s.metrics.throttles.WithLabelValues(string(LimitHighCost)).Inc()
			s.signal(ctx, subject, sigHighCostRefused, send.Region)
			s.decide(ctx, subject, "throttle", "", fmt.Sprintf("high_cost_per_hour %d reached (region %s)", limit, send.Region))
			if s.flagOnce(subject + "\x00" + string(LimitHighCost)) {
				s.notifyAdmins(ctx, fmt.Sprintf("🚩 %s sent more than %d SMS to high-cost destinations in an hour (safety.high_cost_per_hour); "+
					"further ones are refused until the hour has passed.", displayKey(subject), limit))
			}
			s.evaluate(ctx, subject)
			return bridge.Permanent(&LimitError{Limit: LimitHighCost, Max: limit, Per: time.Hour, RetryAfter: wait})
		}
	}
	s.signal(ctx, subject, sigHighCost, send.Region)
	s.evaluate(ctx, subject)
	return nil
}
