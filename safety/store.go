package safety

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Signal kinds recorded in sb_safety_signal.
const (
	sigNewChat         = "new_chat"
	sigNewChatRefused  = "new_chat_refused"
	sigBlocked         = "blocked"
	sigReported        = "reported"
	sigBurst           = "burst"
	sigHighCost        = "high_cost"
	sigHighCostRefused = "high_cost_refused"
	sigRegion          = "region"
)

const (
	insertBlockQuery     = `INSERT INTO sb_safety_block (blocker, blocked, created_at) VALUES ($1, $2, $3) ON CONFLICT (blocker, blocked) DO NOTHING`
	deleteBlockQuery     = `DELETE FROM sb_safety_block WHERE blocker=$1 AND blocked=$2`
	allBlocksQuery       = `SELECT blocker, blocked FROM sb_safety_block`
	countBlocksQuery     = `SELECT COUNT(*) FROM sb_safety_block`
	insertSuspendQuery   = `INSERT INTO sb_safety_suspension (user_id, reason, score, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`
	deleteSuspendQuery   = `DELETE FROM sb_safety_suspension WHERE user_id=$1`
	allSuspendedQuery    = `SELECT user_id, reason, score, created_at FROM sb_safety_suspension ORDER BY created_at`
	insertSignalQuery    = `INSERT INTO sb_safety_signal (subject, kind, scope, at) VALUES ($1, $2, $3, $4)`
	countSignalQuery     = `SELECT COUNT(*), COALESCE(MIN(at), 0) FROM sb_safety_signal WHERE subject=$1 AND kind=$2 AND at > $3`
	subjectSignalsQuery  = `SELECT kind, COUNT(*), COUNT(DISTINCT scope) FROM sb_safety_signal WHERE subject=$1 AND at >= $2 GROUP BY kind`
	signalSubjectsQuery  = `SELECT DISTINCT subject FROM sb_safety_signal WHERE at >= $1`
	countAllSignalsQuery = `SELECT kind, COUNT(*) FROM sb_safety_signal WHERE at >= $1 GROUP BY kind`
	liftedQuery          = `SELECT subject, MAX(at) FROM sb_safety_decision WHERE action='unsuspend' GROUP BY subject`
	insertDecisionQuery  = `INSERT INTO sb_safety_decision (subject, action, actor, detail, at) VALUES ($1, $2, $3, $4, $5)`
	upsertLegQuery       = `
		INSERT INTO sb_safety_leg_contact (network, chat_id, person, sender, seen_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (network, chat_id) DO UPDATE SET person=excluded.person, sender=excluded.sender, seen_at=excluded.seen_at`
	getLegQuery           = `SELECT person, sender FROM sb_safety_leg_contact WHERE network=$1 AND chat_id=$2`
	purgeSignalsQuery     = `DELETE FROM sb_safety_signal WHERE at < $1`
	purgeDecisionsQuery   = `DELETE FROM sb_safety_decision WHERE at < $1`
	purgeLegContactsQuery = `DELETE FROM sb_safety_leg_contact WHERE seen_at < $1`
	upsertActivityQuery   = `
		INSERT INTO sb_safety_activity (conversation_id, person, sent, unanswered, first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (conversation_id, person) DO UPDATE
		SET sent=excluded.sent, unanswered=excluded.unanswered, first_at=excluded.first_at, last_at=excluded.last_at`
	activitySinceQuery = `SELECT conversation_id, person, sent, unanswered, first_at, last_at FROM sb_safety_activity WHERE last_at >= $1`
	purgeActivityQuery = `DELETE FROM sb_safety_activity WHERE last_at < $1`
)

// store is the safety schema's queries.
type store struct {
	db *dbutil.Database
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func dbErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrDatabase, err)
}

func (s *store) exec(ctx context.Context, q string, args ...any) error {
	_, err := s.db.Exec(ctx, q, args...)
	return dbErr(err)
}

func (s *store) signal(ctx context.Context, subject, kind, scope string, at time.Time) error {
	return s.exec(ctx, insertSignalQuery, subject, kind, scope, ms(at))
}

func (s *store) decision(ctx context.Context, subject, action, actor, detail string, at time.Time) error {
	return s.exec(ctx, insertDecisionQuery, subject, action, actor, detail, ms(at))
}

// count returns how many signals of kind subject has since, and the time
// of the oldest of them.
func (s *store) count(ctx context.Context, subject, kind string, since time.Time) (int, time.Time, error) {
	var n int
	var oldest int64
	if err := s.db.QueryRow(ctx, countSignalQuery, subject, kind, ms(since)).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, dbErr(err)
	}
	return n, time.UnixMilli(oldest), nil
}

// input fills the persisted counts of a subject's Input.
func (s *store) input(ctx context.Context, subject string, since time.Time) (Input, error) {
	var in Input
	rows, err := s.db.Query(ctx, subjectSignalsQuery, subject, ms(since))
	if err != nil {
		return in, dbErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n, scopes int
		if err = rows.Scan(&kind, &n, &scopes); err != nil {
			return in, dbErr(err)
		}
		switch kind {
		case sigNewChat:
			in.NewChats = n
		case sigNewChatRefused:
			in.NewChatsRefused = n
		case sigBlocked:
			in.BlocksReceived = n
		case sigReported:
			in.ReportsReceived = n
		case sigBurst:
			in.Bursts = n
		case sigHighCost:
			in.HighCost = n
		case sigHighCostRefused:
			in.HighCostRefused = n
		case sigRegion:
			in.Regions = scopes
		}
	}
	return in, dbErr(rows.Err())
}

func (s *store) subjects(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.db.Query(ctx, signalSubjectsQuery, ms(since))
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var subj string
		if err = rows.Scan(&subj); err != nil {
			return nil, dbErr(err)
		}
		out = append(out, subj)
	}
	return out, dbErr(rows.Err())
}

func (s *store) kindCounts(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, err := s.db.Query(ctx, countAllSignalsQuery, ms(since))
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err = rows.Scan(&kind, &n); err != nil {
			return nil, dbErr(err)
		}
		out[kind] = n
	}
	return out, dbErr(rows.Err())
}

// Suspension is one suspended user.
type Suspension struct {
	User   string
	Reason string
	Score  int
	At     time.Time
}

func (s *store) suspensions(ctx context.Context) ([]Suspension, error) {
	rows, err := s.db.Query(ctx, allSuspendedQuery)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []Suspension
	for rows.Next() {
		var su Suspension
		var at int64
		if err = rows.Scan(&su.User, &su.Reason, &su.Score, &at); err != nil {
			return nil, dbErr(err)
		}
		su.At = time.UnixMilli(at)
		out = append(out, su)
	}
	return out, dbErr(rows.Err())
}

// lifted returns when each Matrix user's suspension was last lifted (as
// long as the decision log keeps it).
func (s *store) lifted(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.Query(ctx, liftedQuery)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var subject string
		var at int64
		if err = rows.Scan(&subject, &at); err != nil {
			return nil, dbErr(err)
		}
		if user, ok := userOfKey(subject); ok {
			out[user] = time.UnixMilli(at)
		}
	}
	return out, dbErr(rows.Err())
}

func (s *store) blocks(ctx context.Context) (map[string]map[string]bool, error) {
	rows, err := s.db.Query(ctx, allBlocksQuery)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := map[string]map[string]bool{}
	for rows.Next() {
		var blocker, blocked string
		if err = rows.Scan(&blocker, &blocked); err != nil {
			return nil, dbErr(err)
		}
		if out[blocker] == nil {
			out[blocker] = map[string]bool{}
		}
		out[blocker][blocked] = true
	}
	return out, dbErr(rows.Err())
}

func (s *store) legContact(ctx context.Context, network, chat string) (person, sender string, ok bool, err error) {
	err = s.db.QueryRow(ctx, getLegQuery, network, chat).Scan(&person, &sender)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, dbErr(err)
	}
	return person, sender, true, nil
}

// purge deletes signals, decisions and leg contacts older than cutoff.
func (s *store) purge(ctx context.Context, cutoff time.Time) error {
	for _, q := range []string{purgeSignalsQuery, purgeDecisionsQuery, purgeLegContactsQuery} {
		if err := s.exec(ctx, q, ms(cutoff)); err != nil {
			return err
		}
	}
	return nil
}

// saveActivity writes activity rows in one transaction.
func (s *store) saveActivity(ctx context.Context, rows []activityRow) error {
	return dbErr(s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for _, r := range rows {
			if _, err := s.db.Exec(ctx, upsertActivityQuery, string(r.conv), r.person, r.count, r.unanswered, ms(r.first), ms(r.last)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// activitySince returns the stored activity rows last touched at or after
// since.
func (s *store) activitySince(ctx context.Context, since time.Time) ([]activityRow, error) {
	rows, err := s.db.Query(ctx, activitySinceQuery, ms(since))
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []activityRow
	for rows.Next() {
		var r activityRow
		var conv string
		var first, last int64
		if err = rows.Scan(&conv, &r.person, &r.count, &r.unanswered, &first, &last); err != nil {
			return nil, dbErr(err)
		}
		r.conv, r.first, r.last = bridge.ConversationID(conv), time.UnixMilli(first), time.UnixMilli(last)
		out = append(out, r)
	}
	return out, dbErr(rows.Err())
}

// purgeActivity deletes activity rows last touched before cutoff.
func (s *store) purgeActivity(ctx context.Context, cutoff time.Time) error {
	return s.exec(ctx, purgeActivityQuery, ms(cutoff))
}
