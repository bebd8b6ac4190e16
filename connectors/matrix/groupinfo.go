package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// MaxAvatarSize bounds a room avatar the connector uploads. Avatars are
// only ever in memory on their way through.
const MaxAvatarSize = 5 << 20

// maxTopicLength bounds a portal's topic, in runes.
const maxTopicLength = 1000

// groupState is what the connector keeps in memory for chat info and
// spaces (groupinfo.go, space.go).
type groupState struct {
	// ghostRemotes caches sb_matrix_ghost_remote: ghost user ID ->
	// ghostRemote, for ghosts this process already recorded.
	ghostRemotes sync.Map
	// spaceMu serialises creating users' spaces in this process.
	spaceMu sync.Mutex
}

type ghostRemote struct {
	network bridge.NetworkID
	remote  bridge.UserID
}

var _ bridge.ChatInfoSender = (*Connector)(nil)

const (
	ghostRemoteUpsertQuery = `
		INSERT INTO sb_matrix_ghost_remote (user_id, network, remote_id) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET network=excluded.network, remote_id=excluded.remote_id`
	ghostRemoteGetQuery = `SELECT network, remote_id FROM sb_matrix_ghost_remote WHERE user_id=$1`
)

// rememberGhost records which remote user a ghost stands for (once per
// process and ghost), so a kick of the ghost can name them. A failure is
// logged: only a later kick of that ghost is affected.
func (c *Connector) rememberGhost(ctx context.Context, ghost id.UserID, network bridge.NetworkID, remote bridge.UserID) {
	want := ghostRemote{network, remote}
	if got, ok := c.group.ghostRemotes.Load(ghost); ok && got.(ghostRemote) == want {
		return
	}
	if err := c.exec(ctx, ghostRemoteUpsertQuery, ghost, network, remote); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to record the remote user of a ghost")
		return
	}
	c.group.ghostRemotes.Store(ghost, want)
}

// ghostRemoteOf returns the remote user a ghost stands for (ok false
// when the bridge never recorded it).
func (c *Connector) ghostRemoteOf(ctx context.Context, ghost id.UserID) (ghostRemote, bool, error) {
	if got, ok := c.group.ghostRemotes.Load(ghost); ok {
		return got.(ghostRemote), true, nil
	}
	var r ghostRemote
	err := c.db.QueryRow(ctx, ghostRemoteGetQuery, ghost).Scan(&r.network, &r.remote)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	} else if err != nil {
		return r, false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	c.group.ghostRemotes.Store(ghost, r)
	return r, true, nil
}

// roomText is a name or topic as a portal shows it: control characters
// (but newlines in topics) dropped, numbers redacted, at most max runes.
func roomText(s string, max int, keepNewlines bool) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && !(keepNewlines && r == '\n') {
			return -1
		}
		return r
	}, s))
	s = phone.Redact(s)
	if runes := []rune(s); len(runes) > max {
		s = string(runes[:max])
	}
	return s
}

// SendChatInfo implements bridge.ChatInfoSender: another network's chat
// name, topic and avatar become the portal's m.room.name, m.room.topic and
// m.room.avatar (set by the bot; a name or topic never shows a number),
// and its members joining and leaving become their ghosts' membership (a
// member removed by someone else is kicked by the bot).
func (c *Connector) SendChatInfo(ctx context.Context, d *bridge.Delivery) error {
	ctx = c.mctx(ctx)
	room, err := roomID(d.Chat)
	if err != nil {
		return err
	}
	ci := d.Event.ChatInfo
	bot := c.as.BotIntent()
	if ci.Name != nil {
		if name := roomText(*ci.Name, maxNameLength, false); name != "" {
			var cur event.RoomNameEventContent
			if bot.StateEvent(ctx, room, event.StateRoomName, "", &cur) != nil || cur.Name != name {
				if _, err = bot.SendStateEvent(ctx, room, event.StateRoomName, "", &event.RoomNameEventContent{Name: name}); err != nil {
					return classify("set room name", err)
				}
			}
		}
	}
	if ci.Topic != nil {
		topic := roomText(*ci.Topic, maxTopicLength, true)
		var cur event.TopicEventContent
		if bot.StateEvent(ctx, room, event.StateTopic, "", &cur) != nil || cur.Topic != topic {
			if _, err = bot.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: topic}); err != nil {
				return classify("set room topic", err)
			}
		}
	}
	if ci.Avatar != nil {
		if err = c.setAvatar(ctx, d, room); err != nil {
			return err
		}
	} else if ci.AvatarRemoved {
		if _, err = bot.SendStateEvent(ctx, room, event.StateRoomAvatar, "", map[string]any{}); err != nil {
			return classify("remove room avatar", err)
		}
	}
	if ci.Member != nil {
		return c.memberChange(ctx, d, room)
	}
	return nil
}

// setAvatar uploads a delivery's avatar (read whole, at most
// MaxAvatarSize bytes, only in memory) and makes it the room's.
func (c *Connector) setAvatar(ctx context.Context, d *bridge.Delivery, room id.RoomID) error {
	data, err := d.ReadAvatar(ctx, MaxAvatarSize)
	if err != nil {
		return err
	}
	mime := http.DetectContentType(data)
	if !strings.HasPrefix(mime, "image/") {
		return bridge.Permanent(fmt.Errorf("%w: avatar is %s", ErrNotAnImage, mime))
	}
	bot := c.as.BotIntent()
	up, err := bot.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: mime})
	if err != nil {
		return classify("upload avatar", err)
	}
	content := &event.RoomAvatarEventContent{URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: mime, Size: len(data)}}
	if _, err = bot.SendStateEvent(ctx, room, event.StateRoomAvatar, "", content); err != nil {
		return classify("set room avatar", err)
	}
	return nil
}

// memberChange makes a member's ghost join or leave the portal.
func (c *Connector) memberChange(ctx context.Context, d *bridge.Delivery, room id.RoomID) error {
	ci := d.Event.ChatInfo
	ghost, err := c.ghostIntent(ctx, d.Event.Source.Network, *ci.Member)
	if err != nil {
		return err
	}
	if ci.Membership == bridge.MemberJoined {
		return classify("join ghost", ghost.EnsureJoined(ctx, room))
	}
	if !c.as.StateStore.IsInRoom(ctx, room, ghost.UserID) {
		return nil
	}
	if d.Event.Sender.ID != ci.Member.ID {
		_, err = c.as.BotIntent().KickUser(ctx, room, &mautrix.ReqKickUser{UserID: ghost.UserID,
			Reason: fmt.Sprintf("removed from the %s chat", d.Event.Source.Network)})
		err = classify("kick ghost", err)
	} else {
		_, err = ghost.LeaveRoom(ctx, room)
		err = classify("ghost leaves", err)
	}
	if errors.Is(err, bridge.ErrPermanent) {
		return nil // already out
	}
	return err
}

// handleChatState bridges a portal's name, topic or avatar set by a
// Matrix user (not the bot or a ghost): it is that user's own view of
// the chat (ChatInfo.Shared is false), which the destination applies
// when it can and when the user may (a WhatsApp group of their own login).
func (c *Connector) handleChatState(ctx context.Context, evt *event.Event) error {
	if evt.GetStateKey() != "" {
		return nil
	}
	ci := &bridge.ChatInfo{}
	switch evt.Type {
	case event.StateRoomName:
		name := strings.TrimSpace(evt.Content.AsRoomName().Name)
		if name == "" {
			return nil // other networks' chats keep a name
		}
		ci.Name = &name
	case event.StateTopic:
		topic := evt.Content.AsTopic().Topic
		ci.Topic = &topic
	case event.StateRoomAvatar:
		url := evt.Content.AsRoomAvatar().URL
		if url == "" {
			ci.AvatarRemoved = true
		} else {
			ci.Avatar = &bridge.Media{Ref: string(url), FileName: "avatar"}
		}
	default:
		return nil
	}
	out := c.baseEvent(evt, bridge.KindChatInfo)
	out.ChatInfo = ci
	_, err := c.submit(ctx, out)
	return err
}

// handleKick bridges a Matrix user removing a ghost from a portal: the
// member it stands for is to be removed from the chat on its network.
func (c *Connector) handleKick(ctx context.Context, evt *event.Event) error {
	content := evt.Content.AsMember()
	target := id.UserID(evt.GetStateKey())
	if !content.Membership.IsLeaveOrBan() || target == evt.Sender || evt.Sender == c.bot || c.IsGhost(evt.Sender) || !c.IsGhost(target) {
		return nil
	}
	remote, ok, err := c.ghostRemoteOf(ctx, target)
	if err != nil {
		return err
	}
	if !ok {
		if p, perr := c.getPortal(ctx, evt.RoomID); perr == nil && p != nil {
			c.sendNotice(ctx, evt.RoomID, "", "⚠️ The bridge does not know who that was on the other network, so they were removed here only.")
		}
		return nil
	}
	out := c.baseEvent(evt, bridge.KindChatInfo)
	out.ChatInfo = &bridge.ChatInfo{Membership: bridge.MemberLeft, Member: &bridge.Sender{ID: remote.remote}}
	_, err = c.submit(ctx, out)
	return err
}
