package matrix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Bounds of the kept undecryptable events, so a hostile room (or sender)
// cannot fill the disk or crowd out everyone else: beyond them, the sender
// is told at once instead.
const (
	maxUndecryptedPerRoom   = 50
	maxUndecryptedPerSender = 50
	maxUndecryptedTotal     = 1000
	// maxUndecryptedSize bounds one kept event (the homeserver's own limit
	// for an event is 64 KiB).
	maxUndecryptedSize = 64 << 10
)

const (
	undecryptedInsertQuery = `
		INSERT INTO sb_matrix_undecrypted (event_id, room_id, sender, session_id, sender_key, event_json, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`
	undecryptedRoomQuery  = `SELECT 1 FROM sb_matrix_undecrypted WHERE room_id=$1 LIMIT 1`
	undecryptedCountQuery = `
		SELECT (SELECT COUNT(*) FROM sb_matrix_undecrypted WHERE room_id=$1),
			(SELECT COUNT(*) FROM sb_matrix_undecrypted WHERE sender=$2),
			(SELECT COUNT(*) FROM sb_matrix_undecrypted)`
	undecryptedListQuery    = `SELECT event_id, room_id, sender, session_id, sender_key, received_at, key_requested FROM sb_matrix_undecrypted ORDER BY received_at, event_id LIMIT $1`
	undecryptedGetQuery     = `SELECT event_json FROM sb_matrix_undecrypted WHERE event_id=$1`
	undecryptedDeleteQuery  = `DELETE FROM sb_matrix_undecrypted WHERE event_id=$1`
	undecryptedRequestQuery = `UPDATE sb_matrix_undecrypted SET key_requested=true WHERE event_id=$1`
)

// undecrypted is a kept event's row, without its JSON.
type undecrypted struct {
	EventID      id.EventID
	RoomID       id.RoomID
	Sender       id.UserID
	SessionID    id.SessionID
	SenderKey    id.SenderKey
	ReceivedAt   time.Time
	KeyRequested bool
}

// keepUndecrypted keeps an encrypted event until its room key arrives. A
// full room (or table) gets a notice instead, at most one per room per key
// deadline.
func (c *Connector) keepUndecrypted(ctx context.Context, evt *event.Event, content *event.EncryptedEventContent) error {
	log := zerolog.Ctx(ctx)
	data, err := json.Marshal(evt)
	if err != nil || len(data) > maxUndecryptedSize {
		log.Debug().Int("size", len(data)).Msg("Encrypted event too large to keep")
		return c.tellUndecryptable(ctx, evt, noticeBadEvent)
	}
	var inRoom, bySender, total int
	if err = c.db.QueryRow(ctx, undecryptedCountQuery, evt.RoomID, evt.Sender).Scan(&inRoom, &bySender, &total); err != nil {
		return fmt.Errorf("%w: count kept events: %w", ErrDatabase, err)
	}
	if inRoom >= maxUndecryptedPerRoom || bySender >= maxUndecryptedPerSender || total >= maxUndecryptedTotal {
		log.Warn().Int("in_room", inRoom).Int("by_sender", bySender).Int("total", total).Msg("Too many encrypted events waiting for their keys; not keeping this one")
		if !c.tooManyNoticeDue(evt.RoomID) {
			// Told lately: only remember that this event was refused.
			_, err = c.claim(ctx, undecryptableKey(evt.ID))
			return err
		}
		return c.tellUndecryptable(ctx, evt, noticeTooMany)
	}
	err = c.exec(ctx, undecryptedInsertQuery, evt.ID, evt.RoomID, evt.Sender, content.SessionID, content.SenderKey, string(data), ms(time.Now()))
	if err != nil {
		return err
	}
	log.Debug().Stringer("session_id", content.SessionID).Bool("owner", c.cs.started.Load()).
		Msg("Kept an encrypted event until its room key arrives")
	// The key may have come between the attempt and the insert, and
	// another process may own the machine: look again soon either way.
	c.wakeUndecrypted()
	return nil
}

// tooManyNoticeDue reports whether a room may be told again that it has
// too many events waiting, and notes that it is being told.
func (c *Connector) tooManyNoticeDue(room id.RoomID) bool {
	c.cs.noticeMu.Lock()
	defer c.cs.noticeMu.Unlock()
	now := time.Now()
	if c.cs.noticed == nil || len(c.cs.noticed) > maxUndecryptedTotal {
		c.cs.noticed = make(map[id.RoomID]time.Time)
	}
	if last, ok := c.cs.noticed[room]; ok && now.Sub(last) < c.keyDeadline() {
		return false
	}
	c.cs.noticed[room] = now
	return true
}

func (c *Connector) listUndecrypted(ctx context.Context) ([]undecrypted, error) {
	rows, err := c.db.Query(ctx, undecryptedListQuery, maxUndecryptedTotal)
	if err != nil {
		return nil, fmt.Errorf("%w: list kept events: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var out []undecrypted
	for rows.Next() {
		var u undecrypted
		var at int64
		if err = rows.Scan(&u.EventID, &u.RoomID, &u.Sender, &u.SessionID, &u.SenderKey, &at, &u.KeyRequested); err != nil {
			return nil, fmt.Errorf("%w: list kept events: %w", ErrDatabase, err)
		}
		u.ReceivedAt = time.UnixMilli(at)
		out = append(out, u)
	}
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: list kept events: %w", ErrDatabase, err)
	}
	return out, nil
}

// loadUndecrypted reads a kept event back; nil when it is gone.
func (c *Connector) loadUndecrypted(ctx context.Context, evtID id.EventID) (*event.Event, error) {
	var data string
	err := c.db.QueryRow(ctx, undecryptedGetQuery, evtID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: load kept event: %w", ErrDatabase, err)
	}
	var evt event.Event
	if err = json.Unmarshal([]byte(data), &evt); err != nil {
		return nil, err
	}
	if err = evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, err
	}
	return &evt, nil
}

// retryUndecrypted works through the kept events, oldest first, in the
// process that owns the bot device: an event whose room key has arrived is
// decrypted and handled (then dropped; a transient failure leaves it for
// the next pass); a key not requested yet is requested from the sender's
// device; an event whose key did not come within the deadline (counted
// from when it came, or from when this process's machine started, if
// later) is dropped and its sender told.
func (c *Connector) retryUndecrypted(ctx context.Context) {
	log := c.log.With().Str("component", "undecrypted").Logger()
	ctx = log.WithContext(ctx)
	kept, err := c.listUndecrypted(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to list encrypted events waiting for keys")
		return
	}
	c.cs.mu.Lock()
	startedAt := c.cs.startedAt
	c.cs.mu.Unlock()
	type sessionKey struct {
		room    id.RoomID
		session id.SessionID
	}
	have := make(map[sessionKey]bool)
	for _, u := range kept {
		if ctx.Err() != nil || !c.cs.started.Load() {
			return
		}
		elog := log.With().Stringer("event_id", u.EventID).Stringer("room_id", u.RoomID).Stringer("session_id", u.SessionID).Logger()
		key := sessionKey{u.RoomID, u.SessionID}
		ok, seen := have[key]
		if !seen {
			if ok, err = c.crypto.hasSession(ctx, u.RoomID, u.SessionID); err != nil {
				elog.Warn().Err(err).Msg("Failed to look up a room key")
				continue
			}
			have[key] = ok
		}
		switch {
		case ok:
			c.retryOne(elog.WithContext(ctx), u)
		case time.Since(later(u.ReceivedAt, startedAt)) > c.keyDeadline():
			c.giveUpUndecrypted(elog.WithContext(ctx), u, noticeNoKey)
		case !u.KeyRequested:
			c.requestUndecryptedKey(elog.WithContext(ctx), u)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// retryOne decrypts and handles one kept event whose key has arrived.
func (c *Connector) retryOne(ctx context.Context, u undecrypted) {
	log := zerolog.Ctx(ctx)
	evt, err := c.loadUndecrypted(ctx, u.EventID)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to load a kept encrypted event")
		if !errors.Is(err, ErrDatabase) {
			c.giveUpUndecrypted(ctx, u, noticeBadEvent)
		}
		return
	} else if evt == nil {
		return
	}
	decrypted, err := c.crypto.decrypt(ctx, evt)
	if errors.Is(err, ErrEncryptionNotReady) {
		return
	} else if err != nil {
		log.Warn().Err(err).Msg("Failed to decrypt a kept event after its key arrived")
		c.giveUpUndecrypted(ctx, u, noticeBadEvent)
		return
	}
	hctx, cancel := context.WithTimeout(c.mctx(ctx), undecryptedBudget)
	err = c.handleDecrypted(hctx, decrypted)
	cancel()
	if err != nil {
		// Transient (database, router): the next pass tries again; the
		// handlers' claims keep side effects from repeating.
		log.Warn().Err(err).Msg("Failed to handle a kept event after its key arrived; retrying")
		return
	}
	log.Debug().Dur("waited", time.Since(u.ReceivedAt)).Msg("Handled an encrypted event after its key arrived")
	if err = c.exec(ctx, undecryptedDeleteQuery, u.EventID); err != nil {
		log.Warn().Err(err).Msg("Failed to drop a handled kept event")
	}
}

// giveUpUndecrypted drops a kept event and tells its sender, once.
func (c *Connector) giveUpUndecrypted(ctx context.Context, u undecrypted, notice string) {
	log := zerolog.Ctx(ctx)
	won, err := c.claim(ctx, undecryptableKey(u.EventID))
	if err != nil {
		log.Warn().Err(err).Msg("Failed to record an undecryptable event")
		return
	}
	if won {
		log.Info().Dur("waited", time.Since(u.ReceivedAt)).Msg("No room key for an encrypted event; telling the sender")
		nctx, cancel := context.WithTimeout(ctx, undecryptedBudget)
		c.sendNotice(nctx, u.RoomID, u.EventID, notice)
		cancel()
	}
	if err = c.exec(ctx, undecryptedDeleteQuery, u.EventID); err != nil {
		log.Warn().Err(err).Msg("Failed to drop an undecryptable event")
	}
}

// requestUndecryptedKey asks the sender's device for a missing room key,
// once per kept event.
func (c *Connector) requestUndecryptedKey(ctx context.Context, u undecrypted) {
	log := zerolog.Ctx(ctx)
	if err := c.exec(ctx, undecryptedRequestQuery, u.EventID); err != nil {
		log.Warn().Err(err).Msg("Failed to note a room key request")
		return
	}
	var device id.DeviceID
	if evt, err := c.loadUndecrypted(ctx, u.EventID); err == nil && evt != nil {
		if content, ok := evt.Content.Parsed.(*event.EncryptedEventContent); ok {
			device = content.DeviceID
		}
	}
	rctx, cancel := context.WithTimeout(c.mctx(ctx), 10*time.Second)
	defer cancel()
	if err := c.crypto.requestKey(rctx, u.RoomID, u.SenderKey, u.SessionID, u.Sender, device); err != nil {
		log.Debug().Err(err).Msg("Failed to request a room key from the sender")
		return
	}
	log.Debug().Msg("Requested a missing room key from the sender")
}
