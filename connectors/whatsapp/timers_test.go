package whatsapp

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

func ephemeral(body string, expiration uint32) *waE2E.Message {
	return &waE2E.Message{EphemeralMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
		ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(body), ContextInfo: &waE2E.ContextInfo{Expiration: proto.Uint32(expiration)}},
	}}}
}

func timerSetting(seconds uint32) *waE2E.Message {
	return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_EPHEMERAL_SETTING.Enum(), EphemeralExpiration: proto.Uint32(seconds),
	}}
}

// WhatsApp chat timers become the leg's retention timer; each ephemeral
// message carries its own timer.
func TestChatTimerBecomesLegPolicy(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	chat := e.chatOf(alice, contactJID)

	require.True(t, f.dispatch(message(contactJID, contactJID, "E1", ephemeral("disappears", 86400))))
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Equal(t, 24*time.Hour, sent[0].Delivery.Event.Timer, "the message's own timer")
	require.False(t, sent[0].Delivery.Expires.IsZero())
	conv, _ := e.conversationOf(chat)

	for _, tc := range []struct {
		name string
		evt  *waE2E.Message
		want bridge.Retention
	}{
		{"first ephemeral message", nil, bridge.Retention{Keep: 24 * time.Hour, Rule: bridge.RuleLegTimer, Network: bridge.NetworkWhatsApp}},
		{"timer set to 7 days", timerSetting(7 * 86400), bridge.Retention{Keep: 7 * 24 * time.Hour, Rule: bridge.RuleLegTimer, Network: bridge.NetworkWhatsApp}},
		{"timer set to 90 days", timerSetting(90 * 86400), bridge.Retention{Keep: 90 * 24 * time.Hour, Rule: bridge.RuleLegTimer, Network: bridge.NetworkWhatsApp}},
		{"timer off", timerSetting(0), bridge.Retention{Keep: 8760 * time.Hour, Rule: bridge.RuleServerDefault}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.evt != nil {
				require.True(t, f.dispatch(message(contactJID, contactJID, "T-"+tc.name, tc.evt)))
			}
			got, err := e.router.ConversationRetention(e.ctx, conv)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	require.Len(t, e.mx.Sent(), 1, "timer changes are not messages")
}

// A conversation timer set from Matrix (the retention command) is applied
// to the WhatsApp chat as the nearest timer WhatsApp offers (not longer
// than the conversation's, except 24h for shorter ones). The bridge's own
// setting is not recorded as the leg's timer, so it can be lengthened
// again.
func TestRetentionCommandSetsWhatsAppTimer(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
	chat := e.chatOf(alice, contactJID)
	conv, mxLeg := e.conversationOf(chat)
	retention := matrix.NewRouterRetention(e.router)

	for _, tc := range []struct {
		arg       string
		wantTimer time.Duration
		wantKeep  time.Duration
	}{
		{"30d", 7 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"24h", 24 * time.Hour, 24 * time.Hour},
		{"10m", 24 * time.Hour, 10 * time.Minute},
		{"365d", 90 * 24 * time.Hour, 365 * 24 * time.Hour},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			n := len(f.timers)
			if tc.arg == "10m" {
				n-- // 24h is already set: nothing to do
			}
			answer, err := retention(e.ctx, matrix.RetentionRequest{User: alice, Room: id.RoomID(mxLeg.Chat), Arg: tc.arg})
			require.NoError(t, err)
			require.NotContains(t, answer, "could not be shown")
			require.Len(t, f.timers, n+1)
			require.Equal(t, timerCall{chat: contactJID, timer: tc.wantTimer}, f.timers[n])
			got, err := e.router.ConversationRetention(e.ctx, conv)
			require.NoError(t, err)
			require.Equal(t, tc.wantKeep, got.Keep)
		})
	}

	// Outgoing messages carry the chat's timer, as WhatsApp clients expect.
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$x",
		Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "bye"}}))
	out := f.waitSent(1)
	require.Equal(t, uint32(90*86400), out[0].msg.GetExtendedTextMessage().GetContextInfo().GetExpiration())

	// A group where the account may not change settings.
	f.timerErr = whatsmeow.ErrIQForbidden
	err := e.wa.SetDisappearingTimer(e.ctx, chat, 24*time.Hour)
	require.ErrorIs(t, err, ErrNoTimerPermission)
	require.ErrorIs(t, err, bridge.ErrPermanent)
}

// When a message's retention ends, the bridge revokes its own copy on
// WhatsApp; messages the contact sent are left to WhatsApp's timer.
func TestExpiryRevokesOwnMessages(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
	chat := e.chatOf(alice, contactJID)
	_, mxLeg := e.conversationOf(chat)
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$x",
		Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "bye"}}))
	own := f.waitSent(1)[0].id

	require.NoError(t, e.wa.ExpireMessage(e.ctx, chat, bridge.RemoteID(own)))
	out := f.waitSent(2)
	require.Equal(t, waE2E.ProtocolMessage_REVOKE, out[1].msg.GetProtocolMessage().GetType())
	require.Equal(t, own, out[1].msg.GetProtocolMessage().GetKey().GetID())
	require.NoError(t, e.wa.ExpireMessage(e.ctx, chat, "M1"))
	require.Len(t, f.sentMessages(), 2, "nothing sent for the contact's message")
	require.NoError(t, context.Cause(e.ctx))
}

func TestWhatsAppTimer(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0}, {-time.Second, 0}, {time.Minute, 24 * time.Hour}, {24 * time.Hour, 24 * time.Hour},
		{6 * 24 * time.Hour, 24 * time.Hour}, {7 * 24 * time.Hour, 7 * 24 * time.Hour},
		{30 * 24 * time.Hour, 7 * 24 * time.Hour}, {90 * 24 * time.Hour, 90 * 24 * time.Hour}, {365 * 24 * time.Hour, 90 * 24 * time.Hour},
	} {
		require.Equal(t, tc.want, WhatsAppTimer(tc.in), "%s", tc.in)
	}
}

// A group's timer arrives as a group notification.
func TestGroupTimer(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(groupJID, contactJID, "G1", text("hi all"))))
	conv, _ := e.conversationOf(e.chatOf(alice, groupJID))
	for _, tc := range []struct {
		eph  types.GroupEphemeral
		want time.Duration
	}{
		{types.GroupEphemeral{IsEphemeral: true, DisappearingTimer: 86400}, 24 * time.Hour},
		{types.GroupEphemeral{IsEphemeral: false}, 8760 * time.Hour},
	} {
		f.dispatch(&events.GroupInfo{JID: groupJID, Ephemeral: &tc.eph})
		got, err := e.router.ConversationRetention(e.ctx, conv)
		require.NoError(t, err)
		require.Equal(t, tc.want, got.Keep)
	}
}
