package safety

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

var _ bridge.Admitter = (*Service)(nil)

// Admit implements bridge.Admitter, in this order:
//
//  1. a suspended user's messages, edits, reactions and changes to a
//     chat (name, topic, avatar, members) are refused;
//  2. legs whose owner blocked the sender (by person key, so on every
//     network) are excluded, silently;
//  3. messages over the per-sender, per-conversation or per-inbound-contact
//     rate are refused with the time to wait;
//  4. the message's metadata is noted for the score and for reports.
func (s *Service) Admit(ctx context.Context, a *bridge.Admission) error {
	evt := a.Event
	if evt.Sender.ID == "" {
		return nil
	}
	addr := bridge.Address{Network: evt.Source.Network, ID: string(evt.Sender.ID)}
	person, err := s.opts.People(ctx, addr)
	if err != nil {
		return err
	}
	sending := evt.Kind == bridge.KindMessage || evt.Kind == bridge.KindEdit || evt.Kind == bridge.KindReaction ||
		evt.Kind == bridge.KindChatInfo
	if user, ok := userOfKey(person); ok && sending && s.IsSuspended(user) {
		return &bridge.RefusedError{Reason: ErrSuspended.Error(), Err: ErrSuspended}
	}
	if evt.Source.Network != bridge.NetworkMatrix {
		s.rememberLeg(ctx, evt.Source, person, string(evt.Sender.ID))
	}
	if err = s.excludeBlocked(ctx, a, addr, person); err != nil {
		return err
	}
	if evt.Kind != bridge.KindMessage || evt.History {
		return nil // history was sent long ago: no rate to limit
	}
	now := s.now()
	checks := []struct {
		lim   *limiter
		key   string
		limit Limit
		max   int
	}{
		{s.sender, person, LimitSender, s.cfg.SenderPerMinute},
		{s.conversation, string(a.Conversation), LimitConversation, s.cfg.ConversationPerMinute},
	}
	if evt.Source.Network != bridge.NetworkMatrix {
		checks = append(checks, struct {
			lim   *limiter
			key   string
			limit Limit
			max   int
		}{s.inbound, person, LimitInbound, s.cfg.InboundPerMinute})
	}
	for _, c := range checks {
		ok, wait, repeat := c.lim.allow(c.key, now)
		if ok {
			continue
		}
		s.metrics.throttles.WithLabelValues(string(c.limit)).Inc()
		if !repeat {
			// One signal and one log line per burst, not per message.
			s.signal(ctx, person, sigBurst, string(c.limit))
			s.decide(ctx, person, "throttle", "", fmt.Sprintf("%s limit %d per minute", c.limit, c.max))
			s.evaluate(ctx, person)
		}
		return &bridge.RefusedError{
			Reason:     fmt.Sprintf("too many messages: %s allows %d per minute; wait %s and send again", c.limit.describe(), c.max, humanDuration(wait)),
			RetryAfter: wait,
			Repeat:     repeat,
			Err:        &LimitError{Limit: c.limit, Max: c.max, Per: time.Minute, RetryAfter: wait},
		}
	}
	if n := s.act.note(a.Conversation, person, now); n%evaluateEvery == 0 && evt.Source.Network == bridge.NetworkMatrix {
		// The unanswered share changes with every message; look at the
		// score now and then, not on every message.
		s.evaluate(ctx, person)
	}
	return nil
}

// evaluateEvery is how many messages of a user in one conversation pass
// between looks at their score.
const evaluateEvery = 20

// keysOf returns the person keys of an address, its People key first.
func (s *Service) keysOf(ctx context.Context, addr bridge.Address) ([]string, error) {
	if s.opts.Aliases != nil {
		keys, err := s.opts.Aliases(ctx, addr)
		if err != nil || len(keys) > 0 {
			return keys, err
		}
	}
	person, err := s.opts.People(ctx, addr)
	if err != nil {
		return nil, err
	}
	return []string{person}, nil
}

// excludeBlocked excludes the legs whose owner blocked the person at addr
// (person is their People key) under any of their keys.
func (s *Service) excludeBlocked(ctx context.Context, a *bridge.Admission, addr bridge.Address, person string) error {
	s.mu.RLock()
	has := len(s.blocks) > 0
	s.mu.RUnlock()
	if !has || s.opts.LegOwner == nil {
		return nil
	}
	keys := []string{person}
	if s.opts.Aliases != nil {
		all, err := s.opts.Aliases(ctx, addr)
		if err != nil {
			return err
		}
		keys = append(keys, all...)
	}
	for _, dest := range a.Dests {
		owner, err := s.owner(ctx, dest)
		if err != nil {
			return err
		}
		if owner == "" {
			continue
		}
		for _, person := range keys {
			if s.Blocked(matrixKey(owner), person) {
				a.Exclude(dest)
				s.metrics.blockedMsgs.Inc()
				break
			}
		}
	}
	return nil
}

// Blocked reports whether blocker (a person key) blocked person.
func (s *Service) Blocked(blocker, person string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.blocks[blocker][person]
}

func (s *Service) owner(ctx context.Context, leg bridge.Leg) (string, error) {
	s.mu.RLock()
	owner, ok := s.owners[leg]
	s.mu.RUnlock()
	if ok {
		return owner, nil
	}
	owner, err := s.opts.LegOwner(ctx, leg)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if len(s.owners) > 100000 {
		clear(s.owners)
	}
	s.owners[leg] = owner
	s.mu.Unlock()
	return owner, nil
}

// rememberLeg records who writes on a non-Matrix leg, for `block` and
// `report` in the room of that conversation.
func (s *Service) rememberLeg(ctx context.Context, leg bridge.Leg, person, sender string) {
	s.mu.Lock()
	known := s.legs[leg] == person
	if !known {
		if len(s.legs) > 100000 {
			clear(s.legs)
		}
		s.legs[leg] = person
	}
	s.mu.Unlock()
	if known {
		return
	}
	if err := s.store.exec(ctx, upsertLegQuery, string(leg.Network), string(leg.Chat), person, sender, ms(s.now())); err != nil {
		s.log.Warn().Err(err).Msg("Failed to remember a leg's contact")
	}
}
