package whatsapp

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// groupEnv is alice logged in, with a WhatsApp group (her, the contact
// and another member) that reached a Matrix portal.
func groupEnv(t *testing.T, account string, own types.JID, opts ...func(*envOpts)) (*env, *fakeClient, *fakeGroups, bridge.Leg) {
	e := newEnv(t, opts...)
	f := e.login(account, own)
	g := f.withGroup(groupJID, "Lunch crew", contactJID, otherJID)
	require.True(t, f.dispatch(message(groupJID, contactJID, "G1", text("hi all"))))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	_, leg := e.conversationOf(e.chatOf(account, groupJID))
	return e, f, g, leg
}

func strp(s string) *string { return &s }

// A group's name, description and picture changed on WhatsApp reach the
// portal as chat info; the picture is fetched from WhatsApp when the
// portal's side asks for it, and nothing names a number.
func TestGroupInfoFromWhatsApp(t *testing.T) {
	e, f, g, _ := groupEnv(t, alice, aliceJID)
	jpg := []byte{0xff, 0xd8, 0xff, 0xe0, 'p', 'i', 'c'}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jpg) }))
	defer srv.Close()
	g.mu.Lock()
	g.pictures[groupJID] = &types.ProfilePictureInfo{URL: srv.URL + "/pic", ID: "77"}
	g.mu.Unlock()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

	rename := &events.GroupInfo{JID: groupJID, Timestamp: t0, Sender: &contactJID,
		Name: &types.GroupName{Name: "Dinner crew"}, Topic: &types.GroupTopic{Topic: "Fridays at 7"}}
	require.True(t, f.dispatch(rename))
	require.True(t, f.dispatch(rename), "delivered again")
	require.True(t, f.dispatch(&events.Picture{JID: groupJID, Author: contactJID, Timestamp: t0.Add(time.Minute), PictureID: "77"}))

	infos := e.mx.WaitChatInfos(2, 5*time.Second)
	require.Len(t, infos, 2)
	meta := infos[0].Event
	require.Equal(t, bridge.KindChatInfo, meta.Kind)
	require.Equal(t, "Dinner crew", *meta.ChatInfo.Name)
	require.Equal(t, "Fridays at 7", *meta.ChatInfo.Topic)
	require.True(t, meta.ChatInfo.Shared)
	require.Equal(t, e.wa.contact(contactJID, types.EmptyJID, "").ID, meta.Sender.ID)

	pic := infos[1]
	require.NotNil(t, pic.Event.ChatInfo.Avatar)
	data, err := pic.ReadAvatar(e.ctx, 1<<20)
	require.NoError(t, err)
	require.Equal(t, jpg, data)
	_, err = pic.ReadAvatar(e.ctx, 3)
	require.ErrorIs(t, err, bridge.ErrMediaTooLarge, "the reader's limit holds")
	requireNoNumbers(t, pic.Event.ChatInfo.Avatar.Ref+meta.Sender.DisplayName, "chat info")

	require.True(t, f.dispatch(&events.Picture{JID: groupJID, Author: contactJID, Timestamp: t0.Add(2 * time.Minute), Remove: true}))
	infos = e.mx.WaitChatInfos(3, 5*time.Second)
	require.Len(t, infos, 3)
	require.True(t, infos[2].Event.ChatInfo.AvatarRemoved)
	requireNoNumbers(t, e.logs.String(), "logs")
}

// Members joining and leaving become membership of their (pseudonymous)
// participants as well as today's notices: a joiner is in before their
// notice, a leaver after.
func TestGroupMembershipFromWhatsApp(t *testing.T) {
	e, f, _, _ := groupEnv(t, alice, aliceJID)
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	other := e.wa.contact(otherJID, types.EmptyJID, "")
	require.True(t, f.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: t0, Sender: &contactJID, Leave: []types.JID{otherJID}}))
	require.True(t, f.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: t0.Add(time.Minute), Sender: &contactJID, Join: []types.JID{otherJID}}))
	infos := e.mx.WaitChatInfos(2, 5*time.Second)
	require.Len(t, infos, 2)
	left, joined := infos[0].Event.ChatInfo, infos[1].Event.ChatInfo
	require.Equal(t, bridge.MemberLeft, left.Membership)
	require.Equal(t, other.ID, left.Member.ID)
	require.Equal(t, e.wa.contact(contactJID, types.EmptyJID, "").ID, infos[0].Event.Sender.ID, "removed by the contact")
	require.Equal(t, bridge.MemberJoined, joined.Membership)
	require.Equal(t, other.ID, joined.Member.ID)
	sent := e.mx.WaitSent(3, 5*time.Second)
	require.Len(t, sent, 3, "the notices are still told")
	require.Equal(t, noticeRemoved, sent[1].Delivery.Event.Content.Body)
	require.Equal(t, noticeJoined, sent[2].Delivery.Event.Content.Body)
	requireNoNumbers(t, left.Member.DisplayName+joined.Member.DisplayName, "members")
}

func pngImage(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// From Matrix, the portal's owner renames the group, changes its
// description and picture (a PNG, sent as the JPEG WhatsApp takes) and
// removes a member; the picture the bridge set does not come back.
func TestGroupInfoToWhatsApp(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) { testGroupInfoToWhatsApp(t, db.opts...) })
	}
}

func testGroupInfoToWhatsApp(t *testing.T, opts ...func(*envOpts)) {
	e, f, g, leg := groupEnv(t, alice, aliceJID, opts...)
	e.mx.PutMedia("mxc://example.org/avatar", pngImage(t))
	owner := bridge.Sender{ID: alice, DisplayName: "Alice"}
	contact := e.wa.contact(contactJID, types.EmptyJID, "")
	for i, ci := range []*bridge.ChatInfo{
		{Name: strp("Dinner crew")},
		{Topic: strp("Fridays at 7")},
		{Avatar: &bridge.Media{Ref: "mxc://example.org/avatar", MimeType: "image/png"}},
		{Membership: bridge.MemberLeft, Member: &contact},
	} {
		require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: leg, Sender: owner,
			SourceID: bridge.RemoteID("$info" + string(rune('a'+i))), ChatInfo: ci}))
	}
	require.True(t, f.waitFor(5*time.Second, func() bool { _, _, _, r := g.snapshot(); return len(r) == 1 }))
	names, topics, photos, removed := g.snapshot()
	require.Equal(t, []string{"Dinner crew"}, names)
	require.Equal(t, []string{"Fridays at 7"}, topics)
	require.Len(t, photos, 1)
	_, format, err := image.Decode(bytes.NewReader(photos[0]))
	require.NoError(t, err)
	require.Equal(t, "jpeg", format)
	require.Equal(t, []types.JID{contactJID}, removed, "the kicked ghost's member is removed on WhatsApp")
	require.Equal(t, "Dinner crew", g.info(groupJID).Name)

	// WhatsApp tells about the picture the bridge set: not sent back.
	require.True(t, f.dispatch(&events.Picture{JID: groupJID, Author: aliceJID.ToNonAD(), Timestamp: time.Now(), PictureID: "pic1"}))
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, e.mx.WaitChatInfos(0, 0), "the bridge's own picture is not echoed")
	requireNoNumbers(t, e.logs.String(), "logs")
	requireStoredNoNumbers(t, e)
}

// What WhatsApp refuses, and what the bridge refuses (the relay account
// changing a group for someone, a user changing another's group), is
// reported to the sender and nothing changes.
func TestGroupInfoRefusals(t *testing.T) {
	t.Run("WhatsApp refuses", func(t *testing.T) {
		e, _, g, leg := groupEnv(t, alice, aliceJID)
		g.mu.Lock()
		g.refuse = whatsmeow.ErrIQForbidden
		g.mu.Unlock()
		requireRefused(t, e, leg, alice, ErrGroupChangeRefused)
		names, _, _, _ := g.snapshot()
		require.Empty(t, names)
	})
	t.Run("relay", func(t *testing.T) {
		e, _, g, leg := groupEnv(t, RelayAccount, relayJID)
		requireRefused(t, e, leg, alice, ErrRelayGroupInfo)
		names, _, _, _ := g.snapshot()
		require.Empty(t, names, "the relay renames nothing")
	})
	t.Run("another user", func(t *testing.T) {
		e, _, g, leg := groupEnv(t, alice, aliceJID)
		requireRefused(t, e, leg, bob, ErrNotYourGroup)
		names, _, _, _ := g.snapshot()
		require.Empty(t, names)
	})
}

func requireRefused(t *testing.T, e *env, leg bridge.Leg, user string, want error) {
	t.Helper()
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: leg, Sender: bridge.Sender{ID: bridge.UserID(user)},
		SourceID: "$rename", ChatInfo: &bridge.ChatInfo{Name: strp("Renamed")}}))
	rep, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$rename" })
	require.True(t, ok)
	require.Equal(t, bridge.StateFailed, rep.State)
	require.ErrorIs(t, rep.Err, want)
	requireNoNumbers(t, rep.Err.Error(), "the reason")
}

// A group's new portal gets the group's description and picture as they
// are (its name comes with the portal), as one user's view: other legs
// are not told.
func TestGroupPortalStartsWithGroupInfo(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	g := f.withGroup(groupJID, "Lunch crew", contactJID)
	jpg := []byte{0xff, 0xd8, 0xff, 0xe0, 'p', 'i', 'c'}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jpg) }))
	defer srv.Close()
	g.mu.Lock()
	g.groups[groupJID].Topic = "Fridays at 7"
	g.pictures[groupJID] = &types.ProfilePictureInfo{URL: srv.URL + "/pic", ID: "9"}
	g.mu.Unlock()
	require.True(t, f.dispatch(message(groupJID, contactJID, "G1", text("hi all"))))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	infos := e.mx.WaitChatInfos(1, 5*time.Second)
	require.Len(t, infos, 1)
	ci := infos[0].Event.ChatInfo
	require.Equal(t, "Fridays at 7", *ci.Topic)
	require.False(t, ci.Shared)
	data, err := infos[0].ReadAvatar(e.ctx, 1<<20)
	require.NoError(t, err)
	require.Equal(t, jpg, data)
}
