package whatsapp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // Matrix avatars are often PNG; WhatsApp takes JPEG
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// groupClient is the part of *whatsmeow.Client that edits groups and
// reads their pictures. It is an optional capability of a Client
// (type-asserted): a client without it cannot apply chat info.
type groupClient interface {
	SetGroupName(ctx context.Context, jid types.JID, name string) error
	SetGroupTopic(ctx context.Context, jid types.JID, previousID, newID, topic string) error
	SetGroupPhoto(ctx context.Context, jid types.JID, avatar []byte) (string, error)
	UpdateGroupParticipants(ctx context.Context, jid types.JID, changes []types.JID, action whatsmeow.ParticipantChange) ([]types.GroupParticipant, error)
	GetProfilePictureInfo(ctx context.Context, jid types.JID, params *whatsmeow.GetProfilePictureParams) (*types.ProfilePictureInfo, error)
}

var (
	_ groupClient           = (*whatsmeow.Client)(nil)
	_ bridge.ChatInfoSender = (*Connector)(nil)
)

// MaxAvatarSize bounds a group picture read from WhatsApp or sent to it.
// Pictures are only ever in memory.
const MaxAvatarSize = 5 << 20

// avatarHTTP fetches group pictures from the URL WhatsApp gives (a plain
// HTTPS download, as WhatsApp's own clients do).
var avatarHTTP = &http.Client{Timeout: time.Minute}

// avatarRefPrefix starts a Media.Ref naming a group's picture; the rest
// is avatarRef as base64 JSON.
const avatarRefPrefix = "waav1:"

type avatarRef struct {
	Chat    bridge.ChatID `json:"c"`
	Picture string        `json:"p"`
}

func (r avatarRef) encode() string {
	b, _ := json.Marshal(r)
	return avatarRefPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeAvatarRef(ref string) (avatarRef, error) {
	var r avatarRef
	raw, ok := strings.CutPrefix(ref, avatarRefPrefix)
	if !ok {
		return r, ErrMediaRef
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || json.Unmarshal(b, &r) != nil || r.Chat == "" {
		return r, ErrMediaRef
	}
	return r, nil
}

// groupInfoID is the SourceID of a group change: the same notification
// delivered again has the same ID.
func groupInfoID(what string, ts time.Time, who bridge.UserID) bridge.RemoteID {
	return bridge.RemoteID("info." + what + "." + string(who) + "." + ts.UTC().Format("20060102150405.000"))
}

// metaChange names what a name or description notification changed, for
// its SourceID: WhatsApp's timestamps are whole seconds and its own "edit
// group" screen sends a new name and a new description as two requests, so
// the two must not share an ID. A description is named by WhatsApp's ID
// for it (random, not its text); nothing of the text goes into the ID.
func metaChange(evt *events.GroupInfo) string {
	var what []string
	if evt.Name != nil {
		what = append(what, "name")
	}
	if evt.Topic != nil {
		topic := "topic"
		if evt.Topic.TopicDeleted {
			topic = "topic-deleted"
		}
		if evt.Topic.TopicID != "" {
			topic += "-" + evt.Topic.TopicID
		}
		what = append(what, topic)
	}
	return "meta." + strings.Join(what, "+")
}

// groupSender is who made a group change: the account itself ("You (from
// WhatsApp)", or the relay), or a participant under their pseudonym.
func (c *Connector) groupSender(l *login, by, byPN *types.JID) bridge.Sender {
	if by == nil || by.IsEmpty() || (!l.jid.IsEmpty() && by.User == l.jid.User && by.Server == l.jid.Server) {
		self := c.pseudo.Phone(userE164(l.jid))
		self.DisplayName = "You (from WhatsApp)"
		if l.account == RelayAccount {
			self.DisplayName = "WhatsApp relay"
		}
		return self
	}
	alt := types.EmptyJID
	if byPN != nil {
		alt = *byPN
	}
	return c.contact(by.ToNonAD(), alt, "")
}

// groupChanges submits what a group notification changed in the group's
// metadata (name, description) and, for members, their membership: joins
// before the notices that announce them (first is true), leaves after
// (first is false), so a ghost is in the room while it speaks. It returns
// false when the router could not take a change (WhatsApp delivers the
// notification again).
func (c *Connector) groupChanges(ctx context.Context, l *login, leg bridge.Leg, evt *events.GroupInfo, first bool) bool {
	var out []*bridge.Event
	sender := c.groupSender(l, evt.Sender, evt.SenderPN)
	if first {
		info := &bridge.ChatInfo{Shared: true}
		if evt.Name != nil {
			name := evt.Name.Name
			info.Name = &name
		}
		if evt.Topic != nil {
			topic := evt.Topic.Topic
			if evt.Topic.TopicDeleted {
				topic = ""
			}
			info.Topic = &topic
		}
		if info.Name != nil || info.Topic != nil {
			out = append(out, &bridge.Event{Kind: bridge.KindChatInfo, Source: leg, Sender: sender, Timestamp: evt.Timestamp,
				SourceID: groupInfoID(metaChange(evt), evt.Timestamp, sender.ID), ChatInfo: info})
		}
	}
	isSelf := func(jid types.JID) bool {
		return !l.jid.IsEmpty() && jid.User == l.jid.User && jid.Server == l.jid.Server
	}
	members, what, membership := evt.Join, "join", bridge.MemberJoined
	if !first {
		members, what, membership = evt.Leave, "leave", bridge.MemberLeft
	}
	for _, jid := range members {
		if jid = jid.ToNonAD(); isSelf(jid) {
			continue
		}
		member := c.contact(jid, types.EmptyJID, "")
		by := sender
		if membership == bridge.MemberJoined || evt.Sender == nil {
			by = member
		}
		out = append(out, &bridge.Event{Kind: bridge.KindChatInfo, Source: leg, Sender: by, Timestamp: evt.Timestamp,
			SourceID: groupInfoID(what, evt.Timestamp, member.ID),
			ChatInfo: &bridge.ChatInfo{Membership: membership, Member: &member, Shared: true}})
	}
	return c.submitChanges(ctx, out)
}

// submitChanges submits chat info events in order; false when one could
// not be taken for a reason a redelivery may fix.
func (c *Connector) submitChanges(ctx context.Context, evts []*bridge.Event) bool {
	for _, out := range evts {
		err := c.host.Submit(ctx, out)
		switch {
		case err == nil, errors.Is(err, bridge.ErrRefused), errors.Is(err, bridge.ErrInvalidEvent):
		case errors.Is(err, bridge.ErrUnknownLeg):
			return true // the group is in no conversation
		default:
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Router did not take a WhatsApp group change; WhatsApp will deliver it again")
			return false
		}
	}
	return true
}

// handlePicture turns a group's new (or removed) picture into a chat info
// change. Pictures the bridge itself set (from Matrix) are not sent back.
func (c *Connector) handlePicture(ctx context.Context, l *login, evt *events.Picture) bool {
	if evt.JID.Server != types.GroupServer {
		return true // contacts' own profile pictures are not bridged
	}
	chat := bridge.ChatID(c.keys.chatID(l.account, evt.JID.ToNonAD().String()))
	if _, err := c.loadChat(ctx, chat); err != nil {
		return true
	}
	if !evt.Remove {
		if _, own := c.ownPictures.LoadAndDelete(evt.PictureID); own {
			return true
		}
	}
	ctx = c.log.With().Str("chat", string(chat)).Logger().WithContext(ctx)
	author := evt.Author
	sender := c.groupSender(l, &author, nil)
	info := &bridge.ChatInfo{Shared: true, AvatarRemoved: evt.Remove}
	if !evt.Remove {
		info.Avatar = &bridge.Media{Ref: avatarRef{Chat: chat, Picture: evt.PictureID}.encode(), MimeType: "image/jpeg", FileName: "avatar.jpg"}
	}
	return c.submitChanges(ctx, []*bridge.Event{{
		Kind: bridge.KindChatInfo, Source: bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat}, Sender: sender,
		Timestamp: evt.Timestamp, SourceID: groupInfoID("picture", evt.Timestamp, bridge.UserID(evt.PictureID)), ChatInfo: info,
	}})
}

// downloadAvatar fetches a group's current picture (at most
// MaxAvatarSize bytes; the destination applies its own limit too).
func (c *Connector) downloadAvatar(ctx context.Context, ref string) (io.ReadCloser, error) {
	r, err := decodeAvatarRef(ref)
	if err != nil {
		return nil, bridge.Permanent(err)
	}
	row, l, err := c.target(ctx, r.Chat)
	if err != nil {
		return nil, err
	}
	gc, ok := l.client.(groupClient)
	if !ok {
		return nil, &bridge.NotSupportedError{Network: bridge.NetworkWhatsApp, Capability: "group pictures"}
	}
	info, err := gc.GetProfilePictureInfo(ctx, row.jid, &whatsmeow.GetProfilePictureParams{})
	if err != nil {
		return nil, classify(err)
	} else if info == nil || info.URL == "" {
		return nil, bridge.Permanent(ErrNoGroupPicture)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, info.URL, nil)
	if err != nil {
		return nil, bridge.Permanent(fmt.Errorf("whatsapp: group picture URL: %w", scrubErr(err)))
	}
	resp, err := avatarHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: download group picture: %w", scrubErr(err))
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		err = fmt.Errorf("whatsapp: download group picture: HTTP %d", resp.StatusCode)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return nil, bridge.Permanent(err)
		}
		return nil, err
	}
	if resp.ContentLength > MaxAvatarSize {
		_ = resp.Body.Close()
		return nil, bridge.Permanent(fmt.Errorf("%w: group picture", bridge.ErrMediaTooLarge))
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, MaxAvatarSize+1), resp.Body}, nil
}

// SendChatInfo implements bridge.ChatInfoSender: a change made from
// Matrix to a WhatsApp group (its name, description or picture, or a
// member removed) is made by the account the chat belongs to, and only
// for that account's own Matrix user: the relay account changes no group
// for anyone (ErrRelayGroupInfo), and nobody changes another user's group
// (ErrNotYourGroup). What WhatsApp refuses (not an admin, say) comes back
// as a Permanent error the sender is told. Changes to one-to-one chats
// (a portal renamed) and joins stay on Matrix.
func (c *Connector) SendChatInfo(ctx context.Context, d *bridge.Delivery) error {
	ci := d.Event.ChatInfo
	row, err := c.loadChat(ctx, d.Chat)
	if errors.Is(err, ErrUnknownChat) || errors.Is(err, ErrStoredJID) {
		return bridge.Permanent(err)
	} else if err != nil {
		return err
	}
	if !row.group || ci.Membership == bridge.MemberJoined {
		return nil
	}
	if row.account == RelayAccount {
		return bridge.Permanent(ErrRelayGroupInfo)
	}
	if string(d.Event.Sender.ID) != row.account {
		return bridge.Permanent(ErrNotYourGroup)
	}
	_, l, err := c.target(ctx, d.Chat)
	if err != nil {
		return err
	}
	gc, ok := l.client.(groupClient)
	if !ok {
		return &bridge.NotSupportedError{Network: bridge.NetworkWhatsApp, Capability: "group changes"}
	}
	refused := func(what string, err error) error {
		err = classify(err)
		if errors.Is(err, whatsmeow.ErrIQForbidden) || errors.Is(err, whatsmeow.ErrIQNotAuthorized) ||
			errors.Is(err, whatsmeow.ErrIQBadRequest) || errors.Is(err, whatsmeow.ErrIQNotAcceptable) {
			return bridge.Permanent(fmt.Errorf("%w: %s: %w", ErrGroupChangeRefused, what, err))
		}
		return fmt.Errorf("whatsapp: %s: %w", what, err)
	}
	if ci.Name != nil {
		if err = gc.SetGroupName(ctx, row.jid, strings.TrimSpace(*ci.Name)); err != nil {
			return refused("rename the group", err)
		}
	}
	if ci.Topic != nil {
		prev := ""
		if info, gerr := l.client.GetGroupInfo(ctx, row.jid); gerr == nil && info != nil {
			prev = info.TopicID
		}
		if err = gc.SetGroupTopic(ctx, row.jid, prev, "", *ci.Topic); err != nil {
			return refused("change the group's description", err)
		}
	}
	if ci.Avatar != nil || ci.AvatarRemoved {
		var jpg []byte
		if ci.Avatar != nil {
			data, err := d.ReadAvatar(ctx, MaxAvatarSize)
			if err != nil {
				return err
			}
			if jpg, err = toJPEG(data); err != nil {
				return bridge.Permanent(err)
			}
		}
		pic, err := gc.SetGroupPhoto(ctx, row.jid, jpg)
		if err != nil {
			return refused("change the group's picture", err)
		}
		if pic != "" {
			c.ownPictures.Store(pic, struct{}{})
		}
	}
	if ci.Membership == bridge.MemberLeft {
		return c.removeMember(ctx, gc, l, row, ci.Member.ID, refused)
	}
	return nil
}

// removeMember removes the participant whose pseudonym is member from a
// group.
func (c *Connector) removeMember(ctx context.Context, gc groupClient, l *login, row *chatRow, member bridge.UserID, refused func(string, error) error) error {
	info, err := l.client.GetGroupInfo(ctx, row.jid)
	if err != nil {
		return refused("list the group's members", err)
	}
	var target types.JID
	for _, p := range info.Participants {
		if c.contact(p.JID, p.PhoneNumber, "").ID == member {
			target = p.JID
			break
		}
	}
	if target.IsEmpty() {
		return nil // already gone
	}
	res, err := gc.UpdateGroupParticipants(ctx, row.jid, []types.JID{target}, whatsmeow.ParticipantChangeRemove)
	if err != nil {
		return refused("remove the member", err)
	}
	for _, p := range res {
		if p.Error != 0 {
			return bridge.Permanent(fmt.Errorf("%w: remove the member: error %d", ErrGroupChangeRefused, p.Error))
		}
	}
	return nil
}

// toJPEG returns an image as JPEG, which WhatsApp requires for group
// pictures (PNG and JPEG are read).
func toJPEG(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}) {
		return data, nil
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGroupPicture, err)
	}
	var buf bytes.Buffer
	if err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGroupPicture, err)
	}
	return buf.Bytes(), nil
}

// initialGroupInfo gives a group's new portal what its name does not
// carry: the group's description and picture as they are (one user's new
// view, not a change: other legs are not told). Best effort: a failure is
// logged and the portal goes on without them.
func (c *Connector) initialGroupInfo(ctx context.Context, l *login, chat bridge.ChatID) {
	row, err := c.loadChat(ctx, chat)
	if err != nil || !row.group {
		return
	}
	info := &bridge.ChatInfo{}
	if gi, err := l.client.GetGroupInfo(ctx, row.jid); err == nil && gi != nil && strings.TrimSpace(gi.Topic) != "" {
		topic := gi.Topic
		info.Topic = &topic
	}
	if gc, ok := l.client.(groupClient); ok {
		if pic, err := gc.GetProfilePictureInfo(ctx, row.jid, &whatsmeow.GetProfilePictureParams{}); err == nil && pic != nil && pic.ID != "" {
			info.Avatar = &bridge.Media{Ref: avatarRef{Chat: chat, Picture: pic.ID}.encode(), MimeType: "image/jpeg", FileName: "avatar.jpg"}
		}
	}
	if info.Topic == nil && info.Avatar == nil {
		return
	}
	c.submitChanges(ctx, []*bridge.Event{{
		Kind: bridge.KindChatInfo, Source: bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: chat},
		Sender: c.groupSender(l, nil, nil), Timestamp: c.now(), SourceID: bridge.RemoteID("info.initial." + strconv.FormatInt(c.now().UnixMilli(), 10)), ChatInfo: info,
	}})
}
