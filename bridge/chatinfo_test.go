package bridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// infoSink is a minimal connector that also applies chat info, reading
// the avatar of each change; refuse makes it refuse them.
type infoSink struct {
	minimal
	refuse error
	mu     sync.Mutex
	infos  []bridge.ChatInfo
	avatar [][]byte
}

var _ bridge.ChatInfoSender = (*infoSink)(nil)

func (s *infoSink) SendChatInfo(ctx context.Context, d *bridge.Delivery) error {
	if s.refuse != nil {
		return s.refuse
	}
	var data []byte
	if d.Event.ChatInfo.Avatar != nil {
		var err error
		if data, err = d.ReadAvatar(ctx, 16); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos = append(s.infos, *d.Event.ChatInfo)
	s.avatar = append(s.avatar, data)
	return nil
}

func (s *infoSink) got() []bridge.ChatInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bridge.ChatInfo(nil), s.infos...)
}

// bodySink is a minimal connector that records what it is sent.
type bodySink struct {
	minimal
	bodies []string
}

func (s *bodySink) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	s.mu.Lock()
	s.bodies = append(s.bodies, d.Event.Content.Body)
	s.mu.Unlock()
	return s.minimal.SendMessage(ctx, d)
}

func ptr(s string) *string { return &s }

func TestChatInfoReachesEveryLegItCan(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		sink := &infoSink{minimal: minimal{network: netC}}
		plain := &bodySink{minimal: minimal{network: "loopd"}}
		h := startHarness(t, dbo, withConnector(sink), withConnector(plain))
		h.conversation(legA("group"), bridge.Leg{Network: netC, Chat: "c"}, bridge.Leg{Network: "loopd", Chat: "d"})
		h.a.PutMedia("pic", []byte("JPEGDATA"))
		ctx := context.Background()
		events := []*bridge.Event{
			{Kind: bridge.KindChatInfo, Source: legA("group"), SourceID: "n1", Sender: bridge.Sender{ID: "alice", DisplayName: "Alice"},
				ChatInfo: &bridge.ChatInfo{Name: ptr("Lunch +1 555 867 5309"), Shared: true}},
			{Kind: bridge.KindChatInfo, Source: legA("group"), SourceID: "p1", Sender: bridge.Sender{ID: "alice"},
				ChatInfo: &bridge.ChatInfo{Avatar: &bridge.Media{Ref: "pic"}, Shared: true}},
			{Kind: bridge.KindChatInfo, Source: legA("group"), SourceID: "j1", Sender: bridge.Sender{ID: "bob"},
				ChatInfo: &bridge.ChatInfo{Membership: bridge.MemberJoined, Member: &bridge.Sender{ID: "bob"}, Shared: true}},
			{Kind: bridge.KindChatInfo, Source: legA("group"), SourceID: "v1", Sender: bridge.Sender{ID: "alice"},
				ChatInfo: &bridge.ChatInfo{Topic: ptr("only my view")}},
		}
		for _, evt := range events {
			require.NoError(t, h.a.Receive(ctx, evt))
		}
		waitQueueEmpty(t, h.router)
		got := sink.got()
		require.Len(t, got, 4, "a ChatInfoSender gets every change")
		require.Equal(t, "Lunch +1 555 867 5309", *got[0].Name)
		require.Equal(t, []byte("JPEGDATA"), sink.avatar[1])
		require.Equal(t, bridge.MemberJoined, got[2].Membership)

		// A connector without ChatInfoSender gets a notice for shared
		// name and picture changes only, without the number.
		plain.mu.Lock()
		defer plain.mu.Unlock()
		require.Equal(t, []string{"renamed the group to “Lunch [number]”.", "changed the group's picture."}, plain.bodies)
	})
}

func TestChatInfoRefusalAndLimitsReported(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		sink := &infoSink{minimal: minimal{network: netC}, refuse: bridge.Permanent(errors.New("not an admin"))}
		h := startHarness(t, dbo, withConnector(sink))
		h.conversation(legA("room"), bridge.Leg{Network: netC, Chat: "c"})
		ctx := context.Background()
		require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: legA("room"), SourceID: "n1",
			Sender: bridge.Sender{ID: "alice"}, ChatInfo: &bridge.ChatInfo{Name: ptr("New")}}))
		rep, ok := h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "n1" })
		require.True(t, ok)
		require.Equal(t, bridge.StateFailed, rep.State)
		require.Equal(t, bridge.KindChatInfo, rep.Kind)
		require.ErrorContains(t, rep.Err, "not an admin")

		sink.refuse = nil
		h.a.PutMedia("big", make([]byte, 17))
		require.NoError(t, h.a.Receive(ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: legA("room"), SourceID: "p1",
			Sender: bridge.Sender{ID: "alice"}, ChatInfo: &bridge.ChatInfo{Avatar: &bridge.Media{Ref: "big"}}}))
		rep, ok = h.a.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "p1" })
		require.True(t, ok)
		require.ErrorIs(t, rep.Err, bridge.ErrMediaTooLarge, "an avatar over the limit is refused, not truncated")
	})
}

func TestChatInfoValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		ci   *bridge.ChatInfo
		ok   bool
	}{
		{"nothing", nil, false},
		{"empty", &bridge.ChatInfo{}, false},
		{"name", &bridge.ChatInfo{Name: ptr("x")}, true},
		{"cleared topic", &bridge.ChatInfo{Topic: ptr("")}, true},
		{"member without membership", &bridge.ChatInfo{Member: &bridge.Sender{ID: "b"}}, false},
		{"membership without member", &bridge.ChatInfo{Membership: bridge.MemberLeft}, false},
		{"unknown membership", &bridge.ChatInfo{Membership: "ban", Member: &bridge.Sender{ID: "b"}}, false},
		{"leave", &bridge.ChatInfo{Membership: bridge.MemberLeft, Member: &bridge.Sender{ID: "b"}}, true},
		{"avatar without ref", &bridge.ChatInfo{Avatar: &bridge.Media{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evt := &bridge.Event{Kind: bridge.KindChatInfo, Source: legA("r"), SourceID: "x", ChatInfo: tc.ci}
			err := evt.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, bridge.ErrInvalidEvent)
			}
		})
	}
}
