package whatsapp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// A message from WhatsApp reaches the other leg once, even when WhatsApp
// delivers it again; its edit, reactions and revoke are translated
// through the router's ID map; and the same works the other way.
func TestMessagesBothWays(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			f := e.login(alice, aliceJID)

			first := message(contactJID, contactJID, "WAMSG1", text("hello *there*"))
			require.True(t, f.dispatch(first))
			require.True(t, f.dispatch(message(contactJID, contactJID, "WAMSG1", text("hello *there*"))), "redelivery")
			sent := e.mx.WaitSent(1, 5*time.Second)
			require.Len(t, sent, 1)
			got := sent[0].Delivery.Event
			require.Equal(t, bridge.KindMessage, got.Kind)
			require.Equal(t, "hello *there*", got.Content.Body)
			require.Equal(t, "hello <strong>there</strong>", got.Content.HTML)
			require.Equal(t, "Carol", got.Sender.DisplayName, "push name")
			require.Equal(t, e.pseudo.Phone(contactNumber).ID, got.Sender.ID, "the same participant as on SMS")
			mxMsg := sent[0].RemoteID
			chat := e.chatOf(alice, contactJID)
			_, mxLeg := e.conversationOf(chat)

			// Edit, reaction, revoke from WhatsApp, as whatsmeow unwraps them.
			edit := message(contactJID, contactJID, "WAMSG2", &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				ProtocolMessage: &waE2E.ProtocolMessage{
					Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), Key: &waCommon.MessageKey{ID: proto.String("WAMSG1")},
					EditedMessage: text("hello _again_"),
				}}}})
			require.True(t, edit.IsEdit)
			require.True(t, f.dispatch(edit))
			react := message(contactJID, contactJID, "WAMSG3", &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key: &waCommon.MessageKey{ID: proto.String("WAMSG1")}, Text: proto.String("👍"),
			}})
			require.True(t, f.dispatch(react))
			unreact := message(contactJID, contactJID, "WAMSG3b", &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key: &waCommon.MessageKey{ID: proto.String("WAMSG1")}, Text: proto.String(""),
			}})
			require.True(t, f.dispatch(unreact))
			revoke := message(contactJID, contactJID, "WAMSG4", &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
				Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: &waCommon.MessageKey{ID: proto.String("WAMSG1")},
			}})
			require.True(t, f.dispatch(revoke))
			sent = e.mx.WaitSent(5, 5*time.Second)
			require.Len(t, sent, 5)
			require.Equal(t, bridge.KindDelete, sent[3].Kind, "reaction removed")
			require.Equal(t, sent[2].RemoteID, sent[3].Delivery.Target, "deletes the delivered reaction")
			sent = append(sent[:3], sent[4])
			for i, want := range []struct {
				kind bridge.Kind
				body string
			}{{bridge.KindEdit, "hello _again_"}, {bridge.KindReaction, ""}, {bridge.KindDelete, ""}} {
				s := sent[i+1]
				require.Equal(t, want.kind, s.Kind)
				require.Equal(t, mxMsg, s.Delivery.Target, "%s targets the Matrix copy", want.kind)
				if want.body != "" {
					require.Equal(t, want.body, s.Delivery.Event.Content.Body)
				}
			}
			require.Equal(t, "👍", sent[2].Delivery.Event.Reaction)

			// Matrix -> WhatsApp: a message, a reply to the WhatsApp message, an
			// edit, a reaction and a delete of the bridge's own message.
			recv := func(evt *bridge.Event) {
				t.Helper()
				evt.Source = mxLeg
				evt.Sender = bridge.Sender{ID: alice, DisplayName: "Alice"}
				require.NoError(t, e.mx.Receive(e.ctx, evt))
			}
			recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$m1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi", HTML: "<b>hi</b> <em>you</em>"}})
			out := f.waitSent(1)
			require.Equal(t, contactJID, out[0].to)
			require.Equal(t, "*hi* _you_", out[0].msg.GetConversation())
			ownID := out[0].id
			require.True(t, e.wa.isOwnID(ownID))

			recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$m2", ReplyTo: "$unknown-but-fine", Content: &bridge.Content{Type: bridge.MsgText, Body: "plain"}})
			recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$m3", ReplyTo: bridge.RemoteID(mxMsg), Content: &bridge.Content{Type: bridge.MsgText, Body: "a reply"}})
			recv(&bridge.Event{Kind: bridge.KindEdit, SourceID: "$m4", Target: "$m1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi!"}})
			recv(&bridge.Event{Kind: bridge.KindReaction, SourceID: "$m5", Target: bridge.RemoteID(mxMsg), Reaction: "❤️"})
			recv(&bridge.Event{Kind: bridge.KindDelete, SourceID: "$m6", Target: "$m1"})
			out = f.waitSent(6)
			require.Len(t, out, 6)
			require.Equal(t, "plain", out[1].msg.GetConversation())
			reply := out[2].msg.GetExtendedTextMessage()
			require.Equal(t, "a reply", reply.GetText())
			require.Equal(t, "WAMSG1", reply.GetContextInfo().GetStanzaID())
			require.Equal(t, contactJID.String(), reply.GetContextInfo().GetParticipant())
			editProto := out[3].msg.GetEditedMessage().GetMessage().GetProtocolMessage()
			require.Equal(t, waE2E.ProtocolMessage_MESSAGE_EDIT, editProto.GetType())
			require.Equal(t, ownID, editProto.GetKey().GetID())
			require.Equal(t, "hi!", editProto.GetEditedMessage().GetConversation())
			require.Equal(t, "WAMSG1", out[4].msg.GetReactionMessage().GetKey().GetID())
			require.Equal(t, "❤️", out[4].msg.GetReactionMessage().GetText())
			require.Equal(t, waE2E.ProtocolMessage_REVOKE, out[5].msg.GetProtocolMessage().GetType())
			require.Equal(t, ownID, out[5].msg.GetProtocolMessage().GetKey().GetID())

			// Read receipts and typing, both ways.
			require.True(t, f.dispatch(&events.Receipt{MessageSource: types.MessageSource{Chat: contactJID, Sender: contactJID},
				MessageIDs: []types.MessageID{ownID}, Type: types.ReceiptTypeRead, Timestamp: time.Now()}))
			sent = e.mx.WaitSent(6, 5*time.Second)
			require.Equal(t, bridge.KindReadReceipt, sent[5].Kind)
			require.Equal(t, bridge.RemoteID("$m1"), sent[5].Delivery.Target)
			recv(&bridge.Event{Kind: bridge.KindReadReceipt, SourceID: "$r1", Target: bridge.RemoteID(mxMsg)})
			require.True(t, f.waitFor(5*time.Second, func() bool { return len(f.reads) == 1 }))
			require.Equal(t, []types.MessageID{"WAMSG1"}, f.reads[0].ids)
			f.dispatch(&events.ChatPresence{MessageSource: types.MessageSource{Chat: contactJID, Sender: contactJID}, State: types.ChatPresenceComposing})
			require.Eventually(t, func() bool { return len(e.mx.Typing()) == 1 }, 5*time.Second, 10*time.Millisecond)
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindTyping, Source: mxLeg, Sender: bridge.Sender{ID: alice}, Typing: true}))
			require.True(t, f.waitFor(5*time.Second, func() bool { return len(f.presences) == 1 }))
			require.Equal(t, types.ChatPresenceComposing, f.presences[0])

			requireNoNumbers(t, e.logs.String(), "logs")
		})
	}
}

// When the router cannot accept a message, the handler reports failure so
// whatsmeow does not acknowledge it and WhatsApp delivers it again.
func TestSubmitFailureIsNotAcknowledged(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.NoError(t, e.router.Stop(e.ctx))
	require.False(t, f.dispatch(message(contactJID, contactJID, "WAMSG1", text("hi"))))
}

// Media both ways: WhatsApp attachments are downloaded through the
// account that received them; Matrix attachments are uploaded.
func TestMedia(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	f.media["/v/img1"] = []byte("jpeg-bytes")
	require.True(t, f.dispatch(message(contactJID, contactJID, "WAIMG1", &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
		Caption: proto.String("look"), Mimetype: proto.String("image/jpeg"), DirectPath: proto.String("/v/img1"),
		MediaKey: []byte("k"), FileLength: proto.Uint64(10), Width: proto.Uint32(4), Height: proto.Uint32(3),
	}})))
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	require.Equal(t, bridge.MsgImage, sent[0].Delivery.Event.Content.Type)
	require.Equal(t, []byte("jpeg-bytes"), sent[0].Media)
	_, mxLeg := e.conversationOf(e.chatOf(alice, contactJID))

	e.mx.PutMedia("mxc://x/voice", oggOpus) // rich_test.go
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$v1",
		Sender:  bridge.Sender{ID: alice, DisplayName: "Alice"},
		Content: &bridge.Content{Type: bridge.MsgVoice, Media: &bridge.Media{Ref: "mxc://x/voice", MimeType: "audio/ogg; codecs=opus", Duration: 3 * time.Second}}}))
	out := f.waitSent(1)
	require.Equal(t, [][]byte{oggOpus}, f.uploads)
	audio := out[0].msg.GetAudioMessage()
	require.True(t, audio.GetPTT())
	require.Equal(t, uint32(3), audio.GetSeconds())
	require.Equal(t, "/up/1", audio.GetDirectPath())

	// An expired attachment is a permanent failure, reported to the sender.
	_, err := e.wa.DownloadMedia(e.ctx, &bridge.Media{Ref: (&mediaRef{Account: alice, Type: "image", DirectPath: "/gone", MediaKey: []byte("k")}).encode()})
	require.ErrorIs(t, err, bridge.ErrPermanent)
	_, err = e.wa.DownloadMedia(e.ctx, &bridge.Media{Ref: "mxc://not-ours"})
	require.ErrorIs(t, err, ErrMediaRef)
}

func pngMagic(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }

var errBoom = errors.New("boom")

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	require.NoError(t, e.wa.RegisterMetrics(reg))
	f := e.login(alice, aliceJID)
	require.Equal(t, 1.0, value(t, e.wa.metrics.logins))
	require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
	require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
	_, mxLeg := e.conversationOf(e.chatOf(alice, contactJID))
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$x",
		Sender: bridge.Sender{ID: alice}, Content: &bridge.Content{Type: bridge.MsgText, Body: "yo"}}))
	f.waitSent(1)
	require.Equal(t, 2.0, value(t, e.wa.metrics.messages.WithLabelValues("in", "accepted")), "a redelivery is accepted (and dropped by the router)")
	// Counted once SendMessage returned, a moment after the fake saw it.
	require.Eventually(t, func() bool { return value(t, e.wa.metrics.messages.WithLabelValues("out", "sent")) == 1 },
		5*time.Second, 10*time.Millisecond)
}

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

// TestGuestPrefix: through a user's own login, their own messages go out
// as they are, and a guest's (someone else in the portal) with the guest's
// name, so the contact does not take it for the user's.
func TestGuestPrefix(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "G1", text("hi"))))
	e.mx.WaitSent(1, 5*time.Second)
	_, mxLeg := e.conversationOf(e.chatOf(alice, contactJID))
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$guest",
		Sender: bridge.Sender{ID: "@carol:example.org", DisplayName: "Carol", Guest: true}, Content: &bridge.Content{Type: bridge.MsgText, Body: "not alice"}}))
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$own",
		Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, Content: &bridge.Content{Type: bridge.MsgText, Body: "alice here"}}))
	out := f.waitSent(2)
	require.Equal(t, "Carol: not alice", out[0].msg.GetConversation())
	require.Equal(t, "alice here", out[1].msg.GetConversation())
}
