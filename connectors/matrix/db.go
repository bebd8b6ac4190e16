package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

const (
	txnSeenQuery      = `SELECT 1 FROM sb_matrix_txn WHERE txn_id=$1`
	txnPruneQuery     = `DELETE FROM sb_matrix_txn WHERE received_at < $1`
	eventSeenQuery    = `SELECT 1 FROM sb_matrix_event WHERE event_id=$1`
	eventInsertQuery  = `INSERT INTO sb_matrix_event (event_id, handled_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`
	eventPruneQuery   = `DELETE FROM sb_matrix_event WHERE handled_at < $1`
	setAsideQuery     = `INSERT INTO sb_matrix_setaside (event_id, room_id, reason, set_at) VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING`
	setAsidePrune     = `DELETE FROM sb_matrix_setaside WHERE set_at < $1`
	ghostGetQuery     = `SELECT displayname FROM sb_matrix_ghost WHERE user_id=$1`
	ghostUpsertQuery  = `INSERT INTO sb_matrix_ghost (user_id, displayname, registered_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET displayname=excluded.displayname`
	portalInsertQuery = `INSERT INTO sb_matrix_portal (room_id, owner, is_direct, encrypted, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id) DO NOTHING`
	portalGetQuery    = `SELECT owner, is_direct, encrypted FROM sb_matrix_portal WHERE room_id=$1`
	mgmtInsertQuery   = `INSERT INTO sb_matrix_management_room (room_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (room_id) DO NOTHING`
	mgmtGetQuery      = `SELECT user_id FROM sb_matrix_management_room WHERE room_id=$1`
	mgmtByUserQuery   = `SELECT room_id FROM sb_matrix_management_room WHERE user_id=$1 ORDER BY created_at DESC LIMIT 1`
	mgmtDeleteQuery   = `DELETE FROM sb_matrix_management_room WHERE room_id=$1`
	portalDeleteQuery = `DELETE FROM sb_matrix_portal WHERE room_id=$1`
)

// handledRowsMaxAge is how long handled transaction and event IDs are kept;
// homeservers stop retrying long before.
const handledRowsMaxAge = 7 * 24 * time.Hour

func ms(t time.Time) int64 { return t.UnixMilli() }

func (c *Connector) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	err := c.db.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return true, nil
}

func (c *Connector) exec(ctx context.Context, query string, args ...any) error {
	if _, err := c.db.Exec(ctx, query, args...); err != nil {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return nil
}

// execOne runs a conditional write (an insert-if-absent, an update with a
// guard) and reports whether it changed exactly one row; what names the
// operation in errors.
func (c *Connector) execOne(ctx context.Context, what, query string, args ...any) (bool, error) {
	res, err := c.db.Exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrDatabase, what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrDatabase, what, err)
	}
	return n == 1, nil
}

// claim records that the side effects keyed by key (an event ID, or an
// event ID with a suffix naming one of several effects) are being carried
// out, and reports whether this caller won: the insert-if-absent makes two
// concurrent transactions carrying one event act once. A claim is never
// released, so an effect that fails half-way is not repeated (at most once).
func (c *Connector) claim(ctx context.Context, key string) (bool, error) {
	return c.execOne(ctx, "claim event", eventInsertQuery, key, ms(time.Now()))
}

// setAside records an event that kept failing, and reports whether it was
// not set aside before.
func (c *Connector) setAside(ctx context.Context, evtID id.EventID, room id.RoomID, reason string) (bool, error) {
	return c.execOne(ctx, "set event aside", setAsideQuery, evtID, room, reason, ms(time.Now()))
}

// prune drops handled-transaction and handled-event rows old enough that
// the homeserver no longer retries them.
func (c *Connector) prune(ctx context.Context) error {
	before := ms(time.Now().Add(-handledRowsMaxAge))
	if err := c.exec(ctx, txnPruneQuery, before); err != nil {
		return err
	}
	if err := c.exec(ctx, setAsidePrune, before); err != nil {
		return err
	}
	return c.exec(ctx, eventPruneQuery, before)
}

// ghostDisplayName returns the display name last set on a registered
// ghost, and whether the ghost is registered.
func (c *Connector) ghostDisplayName(ctx context.Context, userID id.UserID) (string, bool, error) {
	var name string
	err := c.db.QueryRow(ctx, ghostGetQuery, userID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return name, true, nil
}

func (c *Connector) saveGhost(ctx context.Context, userID id.UserID, name string) error {
	return c.exec(ctx, ghostUpsertQuery, userID, name, ms(time.Now()))
}

// portalInfo is a portal room's row.
type portalInfo struct {
	Owner     id.UserID
	Direct    bool
	Encrypted bool
}

// getPortal returns a room's portal row, or nil when the room is no
// portal. It is asked for every message, so answers are cached (see
// roomCache); the returned value must not be changed.
func (c *Connector) getPortal(ctx context.Context, roomID id.RoomID) (*portalInfo, error) {
	now := time.Now()
	if p, ok := c.portals.get(roomID, now); ok {
		return p, nil
	}
	gen := c.portals.begin()
	var p portalInfo
	err := c.db.QueryRow(ctx, portalGetQuery, roomID).Scan(&p.Owner, &p.Direct, &p.Encrypted)
	if errors.Is(err, sql.ErrNoRows) {
		c.portals.put(roomID, nil, now, gen)
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	c.portals.put(roomID, &p, now, gen)
	return &p, nil
}

func (c *Connector) savePortal(ctx context.Context, roomID id.RoomID, p *portalInfo) error {
	defer c.portals.invalidate(roomID)
	return c.exec(ctx, portalInsertQuery, roomID, p.Owner, p.Direct, p.Encrypted, ms(time.Now()))
}

// managementRoomUser returns the user a management room (a DM with the
// bot) belongs to, or "" when the room is not one.
// It is asked for every text message, so answers are cached (see
// roomCache). A room another process has just made a management room may
// be answered "" for a while; a message there then reaches no
// conversation, and handleMessage finds the direct chat with the bot all
// the same.
func (c *Connector) managementRoomUser(ctx context.Context, roomID id.RoomID) (id.UserID, error) {
	now := time.Now()
	if user, ok := c.mgmtRooms.get(roomID, now); ok {
		return user, nil
	}
	gen := c.mgmtRooms.begin()
	var user id.UserID
	err := c.db.QueryRow(ctx, mgmtGetQuery, roomID).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		c.mgmtRooms.put(roomID, "", now, gen)
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	c.mgmtRooms.put(roomID, user, now, gen)
	return user, nil
}

func (c *Connector) saveManagementRoom(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	defer c.mgmtRooms.invalidate(roomID)
	return c.exec(ctx, mgmtInsertQuery, roomID, user, ms(time.Now()))
}

func (c *Connector) forgetRoom(ctx context.Context, roomID id.RoomID) error {
	defer c.portals.invalidate(roomID)
	defer c.mgmtRooms.invalidate(roomID)
	if err := c.exec(ctx, mgmtDeleteQuery, roomID); err != nil {
		return err
	}
	return c.exec(ctx, portalDeleteQuery, roomID)
}
