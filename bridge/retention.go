package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RetentionRule names what imposed a retention period, so a bot can say it.
type RetentionRule string

// Retention rules, from the most binding down.
const (
	// RuleNone: nothing applies; messages are kept.
	RuleNone RetentionRule = ""
	// RuleNetwork: a joined network's default (retention.networks); it
	// cannot be turned off in a conversation.
	RuleNetwork RetentionRule = "network"
	// RuleLegTimer: a leg's own chat timer (WhatsApp chat timer, Matrix
	// com.beeper.disappearing_timer room state).
	RuleLegTimer RetentionRule = "chat timer"
	// RuleConversation: the conversation setting (the retention command).
	RuleConversation RetentionRule = "conversation setting"
	// RuleMessageTimer: the message's own timer.
	RuleMessageTimer RetentionRule = "message timer"
	// RuleServerDefault: retention.default.
	RuleServerDefault RetentionRule = "server default"
)

// Retention is an effective retention period and what imposed it.
type Retention struct {
	// Keep is how long messages are kept; 0 keeps them.
	Keep time.Duration
	Rule RetentionRule
	// Network is the network whose default or chat timer imposed Keep
	// (RuleNetwork, RuleLegTimer).
	Network NetworkID
	// ReadKeep, if positive, is an after-read period (an after-read
	// conversation setting): a message also expires ReadKeep after a
	// recipient reads it, if that comes before its Keep deadline.
	ReadKeep time.Duration
}

// Source names what imposed the period: "network sms", "chat timer on
// whatsapp", "conversation setting", "message timer", "server default".
func (r Retention) Source() string {
	switch r.Rule {
	case RuleNetwork:
		return "network " + string(r.Network)
	case RuleLegTimer:
		return "chat timer on " + string(r.Network)
	case RuleNone:
		return "nothing"
	}
	return string(r.Rule)
}

// String is "30s (network sms)", or "off" when messages are kept, with
// "; 10m0s after read (conversation setting)" for an after-read period.
func (r Retention) String() string {
	out := "off"
	if r.Keep > 0 {
		out = r.Keep.String() + " (" + r.Source() + ")"
	}
	if r.ReadKeep > 0 {
		out += "; " + r.ReadKeep.String() + " after read (" + string(RuleConversation) + ")"
	}
	return out
}

// Expiry is the deadline of a message accepted at now (zero: never).
func (r Retention) Expiry(now time.Time) time.Time {
	if r.Keep <= 0 {
		return time.Time{}
	}
	return now.Add(r.Keep)
}

// stricter returns the shorter non-zero of r and c; on a tie r wins, so
// candidates are offered from the most binding rule down.
func (r Retention) stricter(c Retention) Retention {
	if c.Keep > 0 && (r.Keep <= 0 || c.Keep < r.Keep) {
		c.ReadKeep = r.ReadKeep
		r = c
	}
	if r.ReadKeep >= r.Keep && r.Keep > 0 {
		// Reading cannot bring the deadline forward any more.
		r.ReadKeep = 0
	}
	return r
}

// ConversationSetting is a conversation's own retention choice. The zero
// value means "use the defaults".
type ConversationSetting struct {
	// Keep, if positive, is the conversation's timer.
	Keep time.Duration
	// AfterRead starts Keep's clock when a recipient reads a message
	// (where the network reports reads) instead of when it is sent.
	AfterRead bool
	// Off turns the server default off for this conversation. Network
	// defaults, chat timers and message timers still apply; that is why
	// Router.SetConversationRetention refuses Off while a joined network
	// has a default.
	Off bool
}

// RetentionPolicy is the configured part of retention: the server default
// (retention.default) and the network defaults (retention.networks).
type RetentionPolicy struct {
	Default  time.Duration
	Networks map[NetworkID]time.Duration
}

// RetentionInput is what a conversation's effective retention depends on
// besides the policy.
type RetentionInput struct {
	Legs    []Leg
	Setting ConversationSetting
	// LegTimers are the legs' own chat timers (missing or 0: none).
	LegTimers map[Leg]time.Duration
}

// Effective is a conversation's retention: the strictest (shortest
// non-zero) of the network defaults of its legs, the legs' chat timers, the
// conversation setting and, unless the setting is Off, the server default.
func (p *RetentionPolicy) Effective(in RetentionInput) Retention {
	var r Retention
	if p == nil {
		p = &RetentionPolicy{}
	}
	for _, leg := range in.Legs {
		r = r.stricter(Retention{Keep: p.Networks[leg.Network], Rule: RuleNetwork, Network: leg.Network})
	}
	for _, leg := range in.Legs {
		r = r.stricter(Retention{Keep: in.LegTimers[leg], Rule: RuleLegTimer, Network: leg.Network})
	}
	if in.Setting.AfterRead {
		r.ReadKeep = in.Setting.Keep
		r = r.stricter(Retention{})
	} else {
		r = r.stricter(Retention{Keep: in.Setting.Keep, Rule: RuleConversation})
	}
	if !in.Setting.Off {
		r = r.stricter(Retention{Keep: p.Default, Rule: RuleServerDefault})
	}
	return r
}

// Message is a message's retention: the shorter of the conversation's
// effective retention and the message's own timer.
func (r Retention) Message(timer time.Duration) Retention {
	return r.stricter(Retention{Keep: timer, Rule: RuleMessageTimer})
}

// Required is the strictest network default among legs: the reason a
// conversation cannot turn retention off (Keep 0: nothing requires it).
func (p *RetentionPolicy) Required(legs []Leg) Retention {
	var r Retention
	if p == nil {
		return r
	}
	for _, leg := range legs {
		r = r.stricter(Retention{Keep: p.Networks[leg.Network], Rule: RuleNetwork, Network: leg.Network})
	}
	return r
}

var (
	// ErrRetentionRequired means a conversation asked to turn retention
	// off while a joined network requires it; see RetentionRequiredError.
	ErrRetentionRequired = errors.New("retention is required by a joined network")
	// ErrUnknownConversation means no conversation has the given ID.
	ErrUnknownConversation = errors.New("unknown conversation")
)

// RetentionRequiredError names the network whose default keeps a
// conversation's retention on.
type RetentionRequiredError struct {
	Network NetworkID
	Keep    time.Duration
}

func (e *RetentionRequiredError) Error() string {
	return fmt.Sprintf("network %s deletes messages after %s; retention cannot be turned off here", e.Network, e.Keep)
}

// Is makes errors.Is(err, ErrRetentionRequired) true.
func (e *RetentionRequiredError) Is(target error) bool { return target == ErrRetentionRequired }

// SQL of the retention settings.
const (
	setConversationRetentionQuery = `UPDATE sb_conversation SET retention_ms=$2, retention_after_read=$3 WHERE id=$1`
	setLegTimerQuery              = `UPDATE sb_leg SET timer_ms=$3 WHERE network=$1 AND chat_id=$2`
	// One row per leg with a timer, or one row of NULLs if none has one;
	// no row if the conversation does not exist.
	retentionInputQuery = `
		SELECT c.retention_ms, c.retention_after_read, l.network, l.chat_id, l.timer_ms FROM sb_conversation c
		LEFT JOIN sb_leg l ON l.conversation_id = c.id AND l.timer_ms IS NOT NULL
		WHERE c.id=$1`
)

// SetConversationRetention stores a conversation's retention setting: d > 0
// sets a timer, off turns the server default off, and d == 0 without off
// returns to the defaults. Off fails with a *RetentionRequiredError if a
// joined network has a default. It applies to messages accepted afterwards.
func (r *Router) SetConversationRetention(ctx context.Context, conv ConversationID, d time.Duration, off bool) error {
	if d < 0 || (off && d != 0) {
		return fmt.Errorf("%w: retention must be a positive duration or off", ErrInvalidEvent)
	}
	var value sql.NullInt64
	switch {
	case off:
		legs, err := r.Legs(ctx, conv)
		if err != nil {
			return err
		}
		if req := r.opts.RetentionPolicy.Required(legs); req.Keep > 0 {
			return &RetentionRequiredError{Network: req.Network, Keep: req.Keep}
		}
		value = sql.NullInt64{Valid: true}
	case d > 0:
		value = sql.NullInt64{Int64: max(d.Milliseconds(), 1), Valid: true}
	}
	return r.setConversationRetention(ctx, conv, value, false)
}

// SetConversationRetentionAfterRead sets an after-read timer: each message
// expires d after a recipient first reads it. Stricter after-send rules
// (network defaults, the server default, timers) still apply; a message
// never read is kept until one of them ends it.
func (r *Router) SetConversationRetentionAfterRead(ctx context.Context, conv ConversationID, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%w: an after-read timer must be positive", ErrInvalidEvent)
	}
	return r.setConversationRetention(ctx, conv, sql.NullInt64{Int64: max(d.Milliseconds(), 1), Valid: true}, true)
}

func (r *Router) setConversationRetention(ctx context.Context, conv ConversationID, value sql.NullInt64, afterRead bool) error {
	res, err := r.db.Exec(ctx, setConversationRetentionQuery, conv, value, afterRead)
	r.retCache.forget(conv)
	if err != nil {
		return fmt.Errorf("%w: set retention: %w", ErrDatabase, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrUnknownConversation, conv)
	}
	return nil
}

// SetLegTimer records a leg's own disappearing timer (0 clears it), as its
// network reports it: a WhatsApp chat timer, a Matrix room's
// com.beeper.disappearing_timer state. It applies to messages accepted
// afterwards.
func (r *Router) SetLegTimer(ctx context.Context, leg Leg, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: negative timer", ErrInvalidEvent)
	}
	var value sql.NullInt64
	if d > 0 {
		value = sql.NullInt64{Int64: max(d.Milliseconds(), 1), Valid: true}
	}
	res, err := r.db.Exec(ctx, setLegTimerQuery, leg.Network, leg.Chat, value)
	r.retCache.forget("") // the leg's conversation is not at hand
	if err != nil {
		return fmt.Errorf("%w: set leg timer: %w", ErrDatabase, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrUnknownLeg, leg)
	}
	return nil
}

// ConversationRetention returns a conversation's effective retention (for
// messages without their own timer) and what imposed it.
func (r *Router) ConversationRetention(ctx context.Context, conv ConversationID) (Retention, error) {
	legs, err := r.Legs(ctx, conv)
	if err != nil {
		return Retention{}, err
	}
	in, err := r.retentionInput(ctx, conv, legs)
	if err != nil {
		return Retention{}, err
	}
	return r.opts.RetentionPolicy.Effective(in), nil
}

// UndeletableLegs lists the legs of a conversation whose connector cannot
// delete messages (SMS): they must be disclosed to the participants of a
// conversation with retention, since copies there outlive the deadline.
func (r *Router) UndeletableLegs(ctx context.Context, conv ConversationID) ([]Leg, error) {
	legs, err := r.Legs(ctx, conv)
	if err != nil {
		return nil, err
	}
	var out []Leg
	for _, leg := range legs {
		if _, ok := r.connectors[leg.Network].(DeleteSender); !ok {
			out = append(out, leg)
		}
	}
	return out, nil
}

func (r *Router) retentionInput(ctx context.Context, conv ConversationID, legs []Leg) (RetentionInput, error) {
	in := RetentionInput{Legs: legs}
	rows, err := r.db.Query(ctx, retentionInputQuery, conv)
	if err != nil {
		return in, fmt.Errorf("%w: load retention: %w", ErrDatabase, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		found = true
		var setting, timer sql.NullInt64
		var network, chat sql.NullString
		var afterRead bool
		if err = rows.Scan(&setting, &afterRead, &network, &chat, &timer); err != nil {
			return in, fmt.Errorf("%w: load retention: %w", ErrDatabase, err)
		}
		if setting.Valid {
			in.Setting = ConversationSetting{Keep: time.Duration(setting.Int64) * time.Millisecond, Off: setting.Int64 == 0, AfterRead: afterRead}
		}
		if timer.Valid && timer.Int64 > 0 {
			if in.LegTimers == nil {
				in.LegTimers = make(map[Leg]time.Duration)
			}
			in.LegTimers[Leg{Network: NetworkID(network.String), Chat: ChatID(chat.String)}] = time.Duration(timer.Int64) * time.Millisecond
		}
	}
	if err = rows.Err(); err != nil {
		return in, fmt.Errorf("%w: load retention: %w", ErrDatabase, err)
	}
	if !found {
		return in, fmt.Errorf("%w: %s", ErrUnknownConversation, conv)
	}
	return in, nil
}

// messageExpiry is a message's deadline at accept (zero: kept). It runs in
// the accept transaction carried by ctx.
//
// Read receipts and deletes get none: their rows only deduplicate the event
// (there is nothing to delete on a network), so they are metadata and go
// after MetadataRetention.
func (r *Router) messageExpiry(ctx context.Context, conv ConversationID, legs []Leg, evt *Event, now time.Time) (time.Time, error) {
	switch evt.Kind {
	case KindReadReceipt:
		return time.Time{}, r.startReadClock(ctx, evt, now)
	case KindDelete:
		return time.Time{}, nil
	}
	var ret Retention
	if r.opts.RetentionPolicy != nil {
		in, err := r.cachedRetentionInput(ctx, conv, legs)
		if err != nil {
			return time.Time{}, err
		}
		ret = r.opts.RetentionPolicy.Effective(in).Message(evt.Timer)
	} else {
		ret = ret.Message(evt.Timer)
	}
	if ret.ReadKeep > 0 && evt.Kind == KindMessage {
		if _, err := r.db.Exec(ctx, insertReadTimerQuery, evt.Source.Network, evt.Source.Chat, evt.SourceID, ret.ReadKeep.Milliseconds()); err != nil {
			return time.Time{}, fmt.Errorf("%w: record read timer: %w", ErrDatabase, err)
		}
	}
	return ret.Expiry(now), nil
}

// SQL of after-read timers.
const (
	insertReadTimerQuery = `
		INSERT INTO sb_read_timer (network, chat_id, remote_id, keep_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`
	readTimerQuery = `
		SELECT t.network, t.chat_id, t.remote_id, t.keep_ms FROM sb_message m
		JOIN sb_read_timer t ON t.network = m.network AND t.chat_id = m.chat_id AND t.remote_id = m.remote_id
		WHERE m.message_id=$1`
	deleteReadTimerQuery = `DELETE FROM sb_read_timer WHERE network=$1 AND chat_id=$2 AND remote_id=$3`
	startReadClockQuery  = `
		UPDATE sb_message SET expires_at=$2
		WHERE message_id=$1 AND (expires_at IS NULL OR expires_at > $2)`
)

// startReadClock starts the after-read clock of the message a read receipt
// names, unless the reader is on the sender's own leg. Copies delivered
// after the read keep their after-send deadline.
func (r *Router) startReadClock(ctx context.Context, evt *Event, now time.Time) error {
	msg, err := r.messageID(ctx, evt.Source, evt.Target)
	if err != nil || msg == "" {
		return err
	}
	var src Leg
	var remote RemoteID
	var keep int64
	err = r.db.QueryRow(ctx, readTimerQuery, msg).Scan(&src.Network, &src.Chat, &remote, &keep)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && src == evt.Source) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: read timer: %w", ErrDatabase, err)
	}
	deadline := now.Add(time.Duration(keep) * time.Millisecond)
	if _, err = r.db.Exec(ctx, startReadClockQuery, msg, ms(deadline)); err != nil {
		return fmt.Errorf("%w: start read timer: %w", ErrDatabase, err)
	}
	if _, err = r.db.Exec(ctx, deleteReadTimerQuery, src.Network, src.Chat, remote); err != nil {
		return fmt.Errorf("%w: start read timer: %w", ErrDatabase, err)
	}
	// Woken before the commit, the scheduler may miss the row once; it
	// looks again within PollInterval.
	r.noteExpiry(deadline)
	return nil
}
