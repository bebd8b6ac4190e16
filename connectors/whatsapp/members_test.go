package whatsapp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Group notifications tell the conversation who left, was removed or
// joined, and when the account itself is out or the group is gone, as
// notices from the participant concerned (named by pseudonym, never by
// number). The account's own joining is not news; a notification
// delivered again is told once; a group the bridge never saw is ignored.
func TestGroupMemberNotices(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(groupJID, contactJID, "G1", text("hi all"))))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	conv, _ := e.conversationOf(e.chatOf(alice, groupJID))
	contact := e.wa.contact(contactJID, types.EmptyJID, "")
	other := e.wa.contact(otherJID, types.EmptyJID, "")
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

	for i, tc := range []struct {
		name   string
		evt    *events.GroupInfo
		sender bridge.UserID // "" when nothing is told
		body   string
	}{
		{"contact left", &events.GroupInfo{Sender: &contactJID, Leave: []types.JID{contactJID}}, contact.ID, noticeLeft},
		{"removed by another", &events.GroupInfo{Sender: &contactJID, Leave: []types.JID{otherJID}}, other.ID, noticeRemoved},
		{"left, no sender given", &events.GroupInfo{Leave: []types.JID{otherJID}}, other.ID, noticeLeft},
		{"joined", &events.GroupInfo{Sender: &contactJID, Join: []types.JID{otherJID}}, other.ID, noticeJoined},
		{"own account joined", &events.GroupInfo{Join: []types.JID{aliceJID.ToNonAD()}}, "", ""},
		{"own account removed", &events.GroupInfo{Sender: &contactJID, Leave: []types.JID{aliceJID.ToNonAD()}}, e.wa.pseudo.Phone(userE164(aliceJID)).ID, noticeSelfLeft},
		{"group deleted", &events.GroupInfo{Sender: &contactJID, Delete: &types.GroupDelete{Deleted: true}}, e.wa.pseudo.Phone(userE164(aliceJID)).ID, noticeDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.mx.Sent())
			tc.evt.JID, tc.evt.Timestamp = groupJID, t0.Add(time.Duration(i)*time.Minute)
			require.True(t, f.dispatch(tc.evt))
			require.True(t, f.dispatch(tc.evt), "delivered again")
			if tc.sender == "" {
				time.Sleep(100 * time.Millisecond)
				require.Len(t, e.mx.Sent(), before, "nothing told")
				return
			}
			sent := e.mx.WaitSent(before+1, 5*time.Second)
			require.Len(t, sent, before+1)
			time.Sleep(100 * time.Millisecond)
			require.Len(t, e.mx.Sent(), before+1, "told once")
			got := sent[before].Delivery
			require.Equal(t, conv, got.Conversation)
			require.Equal(t, tc.sender, got.Event.Sender.ID)
			require.Equal(t, bridge.MsgNotice, got.Event.Content.Type)
			require.Equal(t, tc.body, got.Event.Content.Body)
			requireNoNumbers(t, got.Event.Sender.DisplayName+" "+got.Event.Content.Body, "notice")
		})
	}

	t.Run("unknown group", func(t *testing.T) {
		before := len(e.mx.Sent())
		unknown := types.NewJID("120363000000000999", types.GroupServer)
		require.True(t, f.dispatch(&events.GroupInfo{JID: unknown, Timestamp: t0, Leave: []types.JID{contactJID}}))
		time.Sleep(100 * time.Millisecond)
		require.Len(t, e.mx.Sent(), before)
	})
	requireNoNumbers(t, e.logs.String(), "logs")
}

// In a relay group the account's own notices are the relay's, not the
// user's: the user never was in that WhatsApp group.
func TestRelayGroupSelfNotice(t *testing.T) {
	e := newEnv(t)
	relay := e.login(RelayAccount, relayJID)
	require.True(t, relay.dispatch(message(groupJID, contactJID, "G1", text("hi"))))
	require.Len(t, e.mx.WaitSent(1, 5*time.Second), 1)
	require.True(t, relay.dispatch(&events.GroupInfo{JID: groupJID, Timestamp: time.Now(), Sender: &contactJID, Leave: []types.JID{relayJID.ToNonAD()}}))
	sent := e.mx.WaitSent(2, 5*time.Second)
	require.Len(t, sent, 2)
	require.Equal(t, noticeSelfLeft, sent[1].Delivery.Event.Content.Body)
	require.Equal(t, "WhatsApp relay", sent[1].Delivery.Event.Sender.DisplayName)
}
