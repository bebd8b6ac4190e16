package whatsapp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
)

// Against a real homeserver and the real Matrix connector: a WhatsApp
// group's portal takes the group's name and description as they change,
// shows members joining as their ghosts, and sits in the user's space;
// the user renaming the portal renames the group, and kicking a ghost
// removes its member on WhatsApp. No number shows in the room's state,
// the space or the logs.
func TestGroupInfoWithDendrite(t *testing.T) {
	h := startDendriteBridge(t, dendriteBridgeOptions{Config: func(cfg *config.Config) {
		require.True(t, cfg.Appservice.PersonalSpaces, "spaces are on by default")
	}})
	ctx, hs, mx, wa, sessions, logs, alice, tok, do := h.ctx, h.hs, h.mx, h.wa, h.sessions, h.logs, h.alice, h.tok, h.do
	state := h.state
	invited := func() []string {
		var s struct {
			Rooms struct {
				Invite map[string]any `json:"invite"`
			} `json:"rooms"`
		}
		do(http.MethodGet, "/sync?timeout=0", nil, &s)
		var out []string
		for room := range s.Rooms.Invite {
			out = append(out, room)
		}
		return out
	}

	// alice logs in her WhatsApp, which is in a group with two contacts.
	own := types.NewADJID("14155550101", 0, 3)
	g := newFakeClient(own)
	groups := g.withGroup(groupJID, "Lunch crew", contactJID, otherJID)
	sessions.mu.Lock()
	sessions.next = []*fakeClient{g}
	sessions.mu.Unlock()
	require.Contains(t, wa.LoginCommand(ctx, &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: alice}, Level: commands.LevelUser,
		Room: bridge.ChatID("!nowhere:" + hs.ServerName), Name: "login", Args: []string{"whatsapp"}, Reply: func(context.Context, commands.Step) {}}), "Scan")
	require.True(t, g.waitFor(10*time.Second, func() bool { return g.qr != nil }))
	g.dispatch(&events.PairSuccess{ID: own})
	g.qr <- whatsmeow.QRChannelSuccess
	require.Eventually(t, func() bool { return wa.loginOf(alice) != nil && wa.loginOf(alice).jid == own }, 10*time.Second, 20*time.Millisecond)
	g.dispatch(&events.Connected{})

	require.True(t, g.dispatch(message(groupJID, contactJID, "G1", text("hi all"))))
	var portal, space string
	require.Eventually(t, func() bool {
		for _, room := range invited() {
			var create struct {
				Type string `json:"type"`
			}
			// An invitee cannot read state yet: join every invite.
			do(http.MethodPost, "/join/"+url.PathEscape(room), map[string]any{}, nil)
			state(room, "m.room.create", "", &create)
			if create.Type == "m.space" {
				space = room
			} else {
				portal = room
			}
		}
		return portal != "" && space != ""
	}, 20*time.Second, 200*time.Millisecond, "alice is invited to the group's portal and to her space")

	// The portal is a child of the space, and the space its parent.
	var child map[string]any
	require.Eventually(t, func() bool { return state(space, "m.space.child", portal, &child) == http.StatusOK }, 20*time.Second, 100*time.Millisecond, "the portal is a child of the space")
	require.Equal(t, []any{hs.ServerName}, child["via"])
	var parent map[string]any
	require.Eventually(t, func() bool { return state(portal, "m.space.parent", space, &parent) == http.StatusOK }, 20*time.Second, 100*time.Millisecond, "the space is the portal's parent")
	var hierarchy struct {
		Rooms []struct {
			RoomID string `json:"room_id"`
			Name   string `json:"name"`
		} `json:"rooms"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodGet, "/_matrix/client/v1/rooms/"+url.PathEscape(space)+"/hierarchy", tok, nil, &hierarchy))
	var ids []string
	for _, room := range hierarchy.Rooms {
		ids = append(ids, room.RoomID)
		requireNoNumbers(t, room.Name, "a name in the space")
	}
	require.Contains(t, ids, portal, "the space's hierarchy shows the portal")

	// WhatsApp renames the group and sets its description; a member joins.
	require.True(t, g.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: time.Now(), Sender: &contactJID,
		Name: &types.GroupName{Name: "Dinner crew"}, Topic: &types.GroupTopic{Topic: "Fridays at 7, call +1 415 555 0177"}}))
	var name struct {
		Name string `json:"name"`
	}
	require.Eventually(t, func() bool { state(portal, "m.room.name", "", &name); return name.Name == "Dinner crew" }, 20*time.Second, 100*time.Millisecond, "the portal's name follows WhatsApp")
	var topic struct {
		Topic string `json:"topic"`
	}
	require.Eventually(t, func() bool {
		state(portal, "m.room.topic", "", &topic)
		return strings.HasPrefix(topic.Topic, "Fridays at 7")
	}, 20*time.Second, 100*time.Millisecond, "the portal's topic follows WhatsApp")
	requireNoNumbers(t, topic.Topic, "the topic")

	// WhatsApp sets the group's picture: it becomes the portal's avatar.
	pic := pngImage(t)
	picSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pic) }))
	defer picSrv.Close()
	groups.mu.Lock()
	groups.pictures[groupJID] = &types.ProfilePictureInfo{URL: picSrv.URL + "/p", ID: "5"}
	groups.mu.Unlock()
	require.True(t, g.dispatch(&events.Picture{JID: groupJID, Author: contactJID, Timestamp: time.Now(), PictureID: "5"}))
	var avatar struct {
		URL string `json:"url"`
	}
	require.Eventually(t, func() bool {
		state(portal, "m.room.avatar", "", &avatar)
		return strings.HasPrefix(avatar.URL, "mxc://")
	}, 20*time.Second, 100*time.Millisecond, "the portal's avatar follows WhatsApp")

	otherGhost := mx.GhostUserID(bridge.NetworkWhatsApp, wa.contact(otherJID, types.EmptyJID, "").ID)
	require.True(t, g.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: time.Now(), Sender: &contactJID, Join: []types.JID{otherJID}}))
	members := func() map[string]any {
		var m struct {
			Joined map[string]any `json:"joined"`
		}
		do(http.MethodGet, "/rooms/"+url.PathEscape(portal)+"/joined_members", nil, &m)
		return m.Joined
	}
	require.Eventually(t, func() bool { _, ok := members()[otherGhost.String()]; return ok }, 20*time.Second, 100*time.Millisecond, "the joining member's ghost joins")

	// alice renames the portal: the group is renamed on WhatsApp.
	require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(portal)+"/state/m.room.name/", map[string]any{"name": "Brunch crew"}, nil))
	require.True(t, g.waitFor(20*time.Second, func() bool { n, _, _, _ := groups.snapshot(); return slices.Contains(n, "Brunch crew") }), "the group is renamed")

	require.Equal(t, http.StatusOK, do(http.MethodPut, "/rooms/"+url.PathEscape(portal)+"/state/m.room.topic/", map[string]any{"topic": "Sundays"}, nil))
	require.True(t, g.waitFor(20*time.Second, func() bool { _, tp, _, _ := groups.snapshot(); return slices.Contains(tp, "Sundays") }), "the description changes")

	// alice kicks the member's ghost: the member is removed on WhatsApp.
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/rooms/"+url.PathEscape(portal)+"/kick", map[string]any{"user_id": otherGhost}, nil))
	require.True(t, g.waitFor(20*time.Second, func() bool { _, _, _, rm := groups.snapshot(); return slices.Contains(rm, otherJID) }), "the member is removed")

	// On her phone alice removes the contact: their ghost is kicked.
	contactGhost := mx.GhostUserID(bridge.NetworkWhatsApp, wa.contact(contactJID, types.EmptyJID, "").ID)
	require.Contains(t, members(), contactGhost.String())
	byAlice := own.ToNonAD()
	require.True(t, g.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: time.Now(), Sender: &byAlice, Leave: []types.JID{contactJID}}))
	require.Eventually(t, func() bool { _, ok := members()[contactGhost.String()]; return !ok }, 20*time.Second, 100*time.Millisecond, "the removed member's ghost leaves")

	// alice leaves the portal: it is taken out of her space.
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/rooms/"+url.PathEscape(portal)+"/leave", map[string]any{}, nil))
	require.Eventually(t, func() bool {
		child = nil
		state(space, "m.space.child", portal, &child)
		return len(child) == 0
	}, 20*time.Second, 100*time.Millisecond, "a left portal is no longer a child of the space")

	var all []map[string]any
	for _, room := range []string{space} {
		do(http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state", nil, &all)
		for _, e := range all {
			requireNoNumbers(t, str(e["state_key"])+" "+str(e["sender"])+" "+str(asMap(e["content"])["name"])+" "+str(asMap(e["content"])["topic"])+" "+str(asMap(e["content"])["displayname"]), "room state")
		}
	}
	requireNoNumbers(t, logs.String(), "logs")
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
