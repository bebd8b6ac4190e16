package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// spaceName is the name of every user's space.
const spaceName = "Bridged chats"

const (
	spaceGetQuery     = `SELECT room_id FROM sb_matrix_space WHERE user_id=$1`
	spaceInsertQuery  = `INSERT INTO sb_matrix_space (user_id, room_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING`
	spaceDeleteQuery  = `DELETE FROM sb_matrix_space WHERE user_id=$1 AND room_id=$2`
	portalsOwnedQuery = `SELECT room_id FROM sb_matrix_portal WHERE owner=$1 ORDER BY created_at`
)

// Space returns user's space room ("" when personal spaces are off or the
// user has none yet).
func (c *Connector) Space(ctx context.Context, user id.UserID) (id.RoomID, error) {
	var room id.RoomID
	err := c.db.QueryRow(ctx, spaceGetQuery, user).Scan(&room)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return room, nil
}

// ensureSpace returns user's space, creating it the first time (the bot
// creates an m.space room and invites the user) and adding every portal
// the user already has. Two processes racing keep the first space
// recorded; the other's room is left.
func (c *Connector) ensureSpace(ctx context.Context, user id.UserID) (id.RoomID, error) {
	c.group.spaceMu.Lock()
	defer c.group.spaceMu.Unlock()
	if room, err := c.Space(ctx, user); err != nil || room != "" {
		return room, err
	}
	bot := c.as.BotIntent()
	resp, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility:      "private",
		Preset:          "private_chat",
		Name:            spaceName,
		Topic:           "Your chats bridged by " + c.cfg.Appservice.BotDisplayname,
		Invite:          []id.UserID{user},
		CreationContent: map[string]any{"type": event.RoomTypeSpace},
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users:     map[id.UserID]int{c.bot: 100, user: 50},
			InvitePtr: ptrInt(100),
		},
	})
	if err != nil {
		return "", classify("create space", err)
	}
	_ = c.as.StateStore.SetMembership(ctx, resp.RoomID, c.bot, event.MembershipJoin)
	won, err := c.execOne(ctx, "save space", spaceInsertQuery, user, resp.RoomID, ms(time.Now()))
	if err != nil || !won {
		_, _ = bot.LeaveRoom(ctx, resp.RoomID)
		if err != nil {
			return "", err
		}
		return c.Space(ctx, user)
	}
	zerolog.Ctx(ctx).Info().Stringer("space_id", resp.RoomID).Msg("Created a user's space")
	rows, err := c.db.Query(ctx, portalsOwnedQuery, user)
	if err != nil {
		return resp.RoomID, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	var portals []id.RoomID
	for rows.Next() {
		var room id.RoomID
		if err = rows.Scan(&room); err == nil {
			portals = append(portals, room)
		}
	}
	_ = rows.Close()
	for _, room := range portals {
		c.linkSpace(ctx, resp.RoomID, room, true)
	}
	return resp.RoomID, nil
}

// AddToSpace puts a portal into its owner's space (made on first use).
// It does nothing when appservice.personal_spaces is off; failures are
// logged, not returned: a portal works without its space.
func (c *Connector) AddToSpace(ctx context.Context, user id.UserID, room id.RoomID) {
	if !c.cfg.Appservice.PersonalSpaces {
		return
	}
	ctx = c.mctx(ctx)
	existed, err := c.Space(ctx, user)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to look up a user's space")
		return
	}
	space, err := c.ensureSpace(ctx, user)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to create a user's space")
		return
	}
	if existed != "" {
		// A new space already took in every portal, this one included.
		c.linkSpace(ctx, space, room, true)
	}
}

// removeFromSpace takes a portal out of its owner's space (when they left
// it, or the bot did).
func (c *Connector) removeFromSpace(ctx context.Context, user id.UserID, room id.RoomID) {
	space, err := c.Space(ctx, user)
	if err != nil || space == "" {
		return
	}
	c.linkSpace(c.mctx(ctx), space, room, false)
}

// linkSpace adds (or removes) room as a child of space, with the room's
// m.space.parent pointing back when the bot can still set it.
func (c *Connector) linkSpace(ctx context.Context, space, room id.RoomID, add bool) {
	log := zerolog.Ctx(ctx).With().Stringer("space_id", space).Stringer("room_id", room).Logger()
	bot := c.as.BotIntent()
	via := []string{c.cfg.Homeserver.Domain}
	var child, parent any = &event.SpaceChildEventContent{Via: via}, &event.SpaceParentEventContent{Via: via, Canonical: true}
	if !add {
		child, parent = map[string]any{}, map[string]any{}
	}
	if _, err := bot.SendStateEvent(ctx, space, event.StateSpaceChild, room.String(), child); err != nil {
		log.Warn().Err(err).Msg("Failed to update a space's child")
		if errors.Is(err, mautrix.MForbidden) && add {
			// The bot is no longer in the space (the user removed it?):
			// a new space is made next time.
			if derr := c.exec(ctx, spaceDeleteQuery, c.spaceOwner(ctx, space), space); derr != nil {
				log.Warn().Err(derr).Msg("Failed to forget a space")
			}
		}
		return
	}
	if _, err := bot.SendStateEvent(ctx, room, event.StateSpaceParent, space.String(), parent); err != nil {
		log.Debug().Err(err).Msg("Failed to update a portal's space parent")
	}
}

// spaceOwner returns the user a space room belongs to ("" if none).
func (c *Connector) spaceOwner(ctx context.Context, space id.RoomID) id.UserID {
	var user id.UserID
	_ = c.db.QueryRow(ctx, `SELECT user_id FROM sb_matrix_space WHERE room_id=$1`, space).Scan(&user)
	return user
}

// spaceMember keeps spaces in sync with portal membership: a portal's
// owner joining it puts it into their space (made then, the first time,
// so the space's invite never comes before the portal's), and the owner
// or the bot leaving takes it out. It runs before handleMember, which
// forgets a room the bot left; the space's requests run in the
// background.
func (c *Connector) spaceMember(ctx context.Context, evt *event.Event) {
	if !c.cfg.Appservice.PersonalSpaces || c.bgCtx == nil {
		return
	}
	content := evt.Content.AsMember()
	target := id.UserID(evt.GetStateKey())
	joined := content.Membership == event.MembershipJoin
	if joined {
		if prev := evt.Unsigned.PrevContent; prev != nil {
			_ = prev.ParseRaw(event.StateMember)
			if pm, ok := prev.Parsed.(*event.MemberEventContent); ok && pm.Membership == event.MembershipJoin {
				return // a profile change, not a join
			}
		}
	} else if !content.Membership.IsLeaveOrBan() {
		return
	}
	p, err := c.getPortal(ctx, evt.RoomID)
	if err != nil || p == nil || (target != p.Owner && (joined || target != c.bot)) {
		return
	}
	owner, room := p.Owner, evt.RoomID
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if joined {
			c.AddToSpace(c.bgCtx, owner, room)
		} else {
			c.removeFromSpace(c.bgCtx, owner, room)
		}
	}()
}
