package whatsapp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// reaction is a contact's WhatsApp reaction to target ("" removes it).
func reaction(target, emoji string) *waE2E.Message {
	return &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Key: &waCommon.MessageKey{ID: proto.String(target)}, Text: proto.String(emoji)}}
}

// count is the number of rows of a table.
func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.QueryRow(e.ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
	return n
}

// strings returns the one text column a query selects, row by row.
func (e *env) strings(query string) []string {
	e.t.Helper()
	rows, err := e.db.Query(e.ctx, query)
	require.NoError(e.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(e.t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// After a restart the connector still knows who sent a contact's group
// message, so a Matrix reply quotes them and a Matrix reaction is built
// with them as the sender; and a contact's reaction from before the
// restart, removed after it, deletes the reaction Matrix got. What is
// stored holds no number.
func TestGroupMessageRefsSurviveRestart(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			f := e.login(alice, aliceJID)

			require.True(t, f.dispatch(message(groupJID, contactJID, "GMSG1", text("lunch?"))))
			require.True(t, f.dispatch(message(groupJID, contactJID, "GREACT1", reaction("GMSG1", "👍"))))
			sent := e.mx.WaitSent(2, 5*time.Second)
			require.Len(t, sent, 2)
			mxMsg, mxReaction := sent[0].RemoteID, sent[1].RemoteID
			require.Equal(t, bridge.KindReaction, sent[1].Kind)
			_, mxLeg := e.conversationOf(e.chatOf(alice, groupJID))
			require.Equal(t, 1, e.count("sb_whatsapp_sender"), "the group message's sender, not the reaction's")
			require.Equal(t, 1, e.count("sb_whatsapp_contact_reaction"))
			requireStoredNoNumbers(t, e)

			e.restart()
			_, cached := e.wa.senders.get(alice, "GMSG1")
			require.False(t, cached, "a new connector remembers nothing in memory")

			// Matrix -> WhatsApp: a reply quoting the contact, a reaction
			// to their message.
			recv := func(evt *bridge.Event) {
				t.Helper()
				evt.Source, evt.Sender = mxLeg, bridge.Sender{ID: alice, DisplayName: "Alice"}
				require.NoError(t, e.mx.Receive(e.ctx, evt))
			}
			recv(&bridge.Event{Kind: bridge.KindMessage, SourceID: "$reply", ReplyTo: bridge.RemoteID(mxMsg), Content: &bridge.Content{Type: bridge.MsgText, Body: "yes!"}})
			out := f.waitSent(1)
			require.Len(t, out, 1)
			require.Equal(t, groupJID, out[0].to)
			quote := out[0].msg.GetExtendedTextMessage().GetContextInfo()
			require.Equal(t, "GMSG1", quote.GetStanzaID())
			require.Equal(t, contactJID.String(), quote.GetParticipant(), "quotes the contact")
			recv(&bridge.Event{Kind: bridge.KindReaction, SourceID: "$react", Target: bridge.RemoteID(mxMsg), Reaction: "❤️"})
			out = f.waitSent(2)
			require.Len(t, out, 2, "the reaction was built")
			key := out[1].msg.GetReactionMessage().GetKey()
			require.Equal(t, "GMSG1", key.GetID())
			require.Equal(t, contactJID.String(), key.GetParticipant(), "reacts to the contact's message")

			// WhatsApp -> Matrix: the contact removes the reaction they
			// made before the restart.
			require.True(t, f.dispatch(message(groupJID, contactJID, "GREACT2", reaction("GMSG1", ""))))
			sent = e.mx.WaitSent(1, 5*time.Second)
			require.Len(t, sent, 1)
			require.Equal(t, bridge.KindDelete, sent[0].Kind)
			require.Equal(t, mxReaction, sent[0].Delivery.Target, "deletes the reaction Matrix got")
			require.Zero(t, e.count("sb_whatsapp_contact_reaction"), "a removed reaction is forgotten")
			requireNoNumbers(t, e.logs.String(), "logs")
		})
	}
}

// Message senders and contacts' reactions are metadata: the purge deletes
// those older than retention.metadata and keeps the rest; a logout
// deletes the login's.
func TestGroupMessageRefsRetention(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append(tc.opts, withMetadata(2*time.Hour))...)
			f := e.login(alice, aliceJID)
			relay := e.login(RelayAccount, relayJID)
			incoming := func(f *fakeClient, msgID string) {
				t.Helper()
				require.True(t, f.dispatch(message(groupJID, contactJID, msgID, text("hi"))))
				require.True(t, f.dispatch(message(groupJID, contactJID, msgID+"-R", reaction(msgID, "👍"))))
			}
			incoming(f, "OLD")
			e.advance(90 * time.Minute)
			incoming(f, "NEW")
			incoming(relay, "RELAY")
			e.advance(time.Hour) // OLD is 2h30m old, NEW and RELAY 1h
			e.wa.Prune(e.ctx)

			require.Equal(t, []string{"NEW", "RELAY"}, e.strings(`SELECT message_id FROM sb_whatsapp_sender ORDER BY message_id`))
			require.Equal(t, 2, e.count("sb_whatsapp_contact_reaction"))

			// The purged sender is gone for good after a restart; the
			// kept one is still used.
			chat := e.chatOf(alice, groupJID)
			e.restart()
			row, err := e.wa.loadChat(e.ctx, chat)
			require.NoError(t, err)
			l := e.wa.loginOf(alice)
			for msgID, want := range map[string]types.JID{"OLD": types.EmptyJID, "NEW": contactJID} {
				got, err := e.wa.participant(e.ctx, l, row, msgID)
				require.NoError(t, err)
				require.Equal(t, want, got, msgID)
			}

			// alice logs out: her rows go, the relay's stay.
			require.Contains(t, e.wa.LogoutCommand(e.ctx, e.loginReq(alice)), "Logged out")
			require.Equal(t, 1, e.count("sb_whatsapp_sender"))
			require.Equal(t, 1, e.count("sb_whatsapp_contact_reaction"))
			var left string
			require.NoError(t, e.db.QueryRow(e.ctx, `SELECT chat_id FROM sb_whatsapp_contact_reaction`).Scan(&left))
			require.Equal(t, string(e.chatOf(RelayAccount, groupJID)), left)
		})
	}
}

// A reaction the bridge sent for a Matrix user is still known after a
// restart: removing it on Matrix removes it on WhatsApp (a reaction with
// nothing, to the same message and sender), and its retention ending
// does too. Removed reactions are forgotten; nothing stored holds a
// number.
func TestSentReactionsSurviveRestart(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			f := e.login(alice, aliceJID)
			require.True(t, f.dispatch(message(groupJID, contactJID, "GMSG1", text("lunch?"))))
			sent := e.mx.WaitSent(1, 5*time.Second)
			require.Len(t, sent, 1)
			chat := e.chatOf(alice, groupJID)
			_, mxLeg := e.conversationOf(chat)
			react := func(id bridge.RemoteID, emoji string) string {
				t.Helper()
				n := len(f.sentMessages())
				require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindReaction, Source: mxLeg, SourceID: id,
					Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, Target: sent[0].RemoteID, Reaction: emoji}))
				out := f.waitSent(n + 1)
				require.Len(t, out, n+1)
				require.Equal(t, emoji, out[n].msg.GetReactionMessage().GetText())
				return string(out[n].id)
			}
			react("$react1", "❤️")
			second := react("$react2", "👍")
			// Recorded once the send returned (the fake saw it a moment before).
			require.Eventually(t, func() bool { return e.count("sb_whatsapp_own_reaction") == 2 }, 5*time.Second, 10*time.Millisecond)
			requireStoredNoNumbers(t, e)

			e.restart()
			_, cached := e.wa.reactions.get(second)
			require.False(t, cached, "a new connector remembers nothing in memory")
			requireRemoval := func(n int) {
				t.Helper()
				out := f.waitSent(n)
				require.Len(t, out, n)
				rm := out[n-1].msg.GetReactionMessage()
				require.NotNil(t, rm, "a reaction removal was sent")
				require.Empty(t, rm.GetText())
				require.Equal(t, "GMSG1", rm.GetKey().GetID())
				require.Equal(t, contactJID.String(), rm.GetKey().GetParticipant())
			}
			before := len(f.sentMessages())
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindDelete, Source: mxLeg, SourceID: "$redact1",
				Sender: bridge.Sender{ID: alice}, Target: "$react1"}))
			requireRemoval(before + 1)
			require.Eventually(t, func() bool { return e.count("sb_whatsapp_own_reaction") == 1 }, 5*time.Second, 10*time.Millisecond,
				"a removed reaction is forgotten")

			require.NoError(t, e.wa.ExpireMessage(e.ctx, chat, bridge.RemoteID(second)), "retention ends")
			requireRemoval(before + 2)
			require.Zero(t, e.count("sb_whatsapp_own_reaction"))
			requireNoNumbers(t, e.logs.String(), "logs")
		})
	}
}

// Sent reactions without an expiry go after retention.metadata (kept when
// it is 0); those with one, a day after it.
func TestSentReactionsPrune(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metadata time.Duration
		want     []string
	}{
		{"metadata 2h", 2 * time.Hour, []string{"new-no-expiry", "old-expires-later"}},
		{"metadata kept", 0, []string{"new-no-expiry", "old-expires-later", "old-no-expiry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withMetadata(tc.metadata))
			e.login(alice, aliceJID)
			chat := e.chatOf(alice, groupJID)
			remember := func(id string, expires time.Time) {
				e.wa.rememberOwnReaction(e.ctx, chat, id, reactionOf{target: "GMSG1", sender: contactJID}, expires)
			}
			remember("old-no-expiry", time.Time{})
			remember("old-expired", e.clock.Now().Add(time.Hour))
			remember("old-expires-later", e.clock.Now().Add(48*time.Hour))
			e.advance(26 * time.Hour) // old-expired ended 25h ago
			remember("new-no-expiry", time.Time{})
			e.wa.Prune(e.ctx)

			require.Equal(t, tc.want, e.strings(`SELECT reaction_id FROM sb_whatsapp_own_reaction ORDER BY reaction_id`))
		})
	}
}
