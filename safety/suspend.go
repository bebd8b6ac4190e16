package safety

import (
	"context"
	"fmt"
	"time"
)

// IsSuspended reports whether a Matrix user is suspended.
func (s *Service) IsSuspended(user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.suspended[user]
	return ok
}

// Suspend suspends a Matrix user (actor: "score" or an admin's user ID).
func (s *Service) Suspend(ctx context.Context, user, actor, reason string, score int) (bool, error) {
	now := s.now()
	s.mu.Lock()
	if _, ok := s.suspended[user]; ok {
		s.mu.Unlock()
		return false, nil
	}
	s.suspended[user] = Suspension{User: user, Reason: reason, Score: score, At: now}
	s.mu.Unlock()
	if err := s.store.exec(ctx, insertSuspendQuery, user, reason, score, ms(now)); err != nil {
		s.mu.Lock()
		delete(s.suspended, user)
		s.mu.Unlock()
		return false, err
	}
	by := "admin"
	if actor == actorScore {
		by = actorScore
	}
	s.metrics.suspensions.WithLabelValues(by).Inc()
	s.decide(ctx, matrixKey(user), "suspend", actor, fmt.Sprintf("score %d: %s", score, reason))
	s.notifyUser(ctx, user, "Your use of this bridge is suspended pending review by the bridge admins ("+reason+
		"). Messages you send through the bridge are not delivered until an admin lifts the suspension.")
	return true, nil
}

// Unsuspend lifts a suspension.
func (s *Service) Unsuspend(ctx context.Context, user, actor string) (bool, error) {
	s.mu.Lock()
	_, ok := s.suspended[user]
	delete(s.suspended, user)
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := s.store.exec(ctx, deleteSuspendQuery, user); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.cleared[user] = s.now()
	s.mu.Unlock()
	s.decide(ctx, matrixKey(user), actionUnsuspend, actor, "")
	s.notifyUser(ctx, user, "An admin lifted your suspension: you can use the bridge again.")
	return true, nil
}

const (
	actorScore      = "score"
	actionUnsuspend = "unsuspend"
)

// Evaluate computes a person's score and suspends a Matrix user whose
// score reached safety.suspend_score, telling the admins and the user.
// After an admin lifted a suspension, only newer signals count toward
// another one.
func (s *Service) Evaluate(ctx context.Context, subject string) (int, Input, error) {
	in, err := s.Input(ctx, subject)
	if err != nil {
		return 0, in, err
	}
	score := Score(in)
	user, isUser := userOfKey(subject)
	if s.cfg.SuspendScore <= 0 || score < s.cfg.SuspendScore || !isUser || s.IsSuspended(user) {
		return score, in, nil
	}
	s.mu.RLock()
	cleared, wasCleared := s.cleared[user]
	s.mu.RUnlock()
	if wasCleared && cleared.After(s.now().Add(-s.window())) {
		since, err := s.store.input(ctx, subject, cleared.Add(time.Millisecond))
		if err != nil {
			return score, in, err
		}
		if Score(since) < s.cfg.SuspendScore {
			return score, in, nil
		}
	}
	reason := fmt.Sprintf("abuse score %d reached the threshold %d", score, s.cfg.SuspendScore)
	if ok, err := s.Suspend(ctx, user, actorScore, reason, score); err != nil || !ok {
		return score, in, err
	}
	s.notifyAdmins(ctx, fmt.Sprintf("🚩 %s was suspended automatically pending your review: %s. Signals (last %s): %s. "+
		"Use `admin unsuspend %s` to lift it.", user, reason, windowText(s.window()), in.Summary(), user))
	return score, in, nil
}

// Input is a person's score input: persisted signals in the window plus
// recent activity.
func (s *Service) Input(ctx context.Context, subject string) (Input, error) {
	in, err := s.store.input(ctx, subject, s.now().Add(-s.window()))
	if err != nil {
		return in, err
	}
	in.Outbound, in.Unanswered = s.act.outbound(subject)
	return in, nil
}

// evaluate evaluates after a signal; an error is logged, not returned:
// the caller's answer does not wait on it.
func (s *Service) evaluate(ctx context.Context, subject string) {
	if _, _, err := s.Evaluate(ctx, subject); err != nil {
		s.log.Warn().Err(err).Msg("Failed to evaluate abuse score")
	}
}

func (s *Service) signal(ctx context.Context, subject, kind, scope string) {
	if err := s.store.signal(ctx, subject, kind, scope, s.now()); err != nil {
		s.log.Warn().Err(err).Str("kind", kind).Msg("Failed to record safety signal")
	}
}
