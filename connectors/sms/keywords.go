package sms

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Keyword messages (STOP, START, HELP…) change what the bridge may send to
// a contact, so each is applied once and the newest wins: a webhook carries
// no date and its signature stays valid forever, so a redelivered or
// replayed keyword must not undo a later one. The MessageSid is claimed
// (a keyed hash in sb_sms_keyword) in the same transaction that applies
// the keyword, and the opt-out row only changes if the keyword was
// received after the one in force (sb_sms_optout.updated_at). A webhook
// kept in the spool while the database was down keeps the time it was
// received, so it is ordered as it arrived.
const (
	claimKeywordQuery = `
		INSERT INTO sb_sms_keyword (sid_hash, received_at, applied) VALUES ($1, $2, false)
		ON CONFLICT (sid_hash) DO NOTHING`
	keywordStateQuery   = `SELECT applied, done FROM sb_sms_keyword WHERE sid_hash=$1`
	keywordAppliedQuery = `UPDATE sb_sms_keyword SET applied=true WHERE sid_hash=$1`
	keywordDoneQuery    = `UPDATE sb_sms_keyword SET done=true WHERE sid_hash=$1`
	// The newest keyword wins: an upsert that changes nothing when the
	// row in force was received later.
	applyOptOutQuery = `
		INSERT INTO sb_sms_optout (contact_hash, opted_out, keyword, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (contact_hash) DO UPDATE SET opted_out=excluded.opted_out, keyword=excluded.keyword, updated_at=excluded.updated_at
		WHERE sb_sms_optout.updated_at <= excluded.updated_at`
	applyKeywordQuery = `
		INSERT INTO sb_sms_optout (contact_hash, opted_out, keyword, updated_at) VALUES ($1, false, $2, $3)
		ON CONFLICT (contact_hash) DO UPDATE SET keyword=excluded.keyword, updated_at=excluded.updated_at
		WHERE sb_sms_optout.updated_at <= excluded.updated_at`
)

// keywordState is the outcome of claiming a keyword message.
type keywordState struct {
	sidHash string
	// seen: the MessageSid was claimed before (a redelivery or a replay);
	// nothing was changed now.
	seen bool
	// applied: the keyword is (or was, when seen) the one in force; false
	// when a newer keyword had already been received.
	applied bool
	// done: the contact's conversations were already told.
	done bool
}

func (k *keys) sidHash(sid string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.lookup, "keyword message", sid))
}

// applyKeyword claims a keyword message's MessageSid and, on first sight,
// applies the keyword if it is newer than the one in force.
func (c *Connector) applyKeyword(ctx context.Context, sid, contactHash, keyword string, received time.Time) (*keywordState, error) {
	st := &keywordState{sidHash: c.keys.sidHash(sid)}
	at := received.UnixMilli()
	err := c.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		st.seen, st.applied, st.done = false, false, false
		res, err := c.db.Exec(ctx, claimKeywordQuery, st.sidHash, at)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			st.seen = true
			return c.db.QueryRow(ctx, keywordStateQuery, st.sidHash).Scan(&st.applied, &st.done)
		}
		switch keyword {
		case "STOP":
			res, err = c.db.Exec(ctx, applyOptOutQuery, contactHash, true, keyword, at)
		case "START":
			res, err = c.db.Exec(ctx, applyOptOutQuery, contactHash, false, keyword, at)
		default:
			res, err = c.db.Exec(ctx, applyKeywordQuery, contactHash, keyword, at)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			st.applied = true
			_, err = c.db.Exec(ctx, keywordAppliedQuery, st.sidHash)
		}
		return err
	})
	// After the commit (or its failure): a send reads the new state.
	c.optOuts.forget(contactHash)
	if err != nil {
		return nil, fmt.Errorf("%w: apply sms keyword: %w", bridge.ErrDatabase, err)
	}
	return st, nil
}

// keywordDone records that the conversations were told of a keyword, so a
// redelivery does not tell them again. A failure only means a redelivery
// is submitted again (and deduplicated by the router).
func (c *Connector) keywordDone(ctx context.Context, st *keywordState) {
	if _, err := c.db.Exec(ctx, keywordDoneQuery, st.sidHash); err != nil {
		c.log.Warn().Err(err).Msg("Failed to mark an SMS keyword as handled")
	}
}
