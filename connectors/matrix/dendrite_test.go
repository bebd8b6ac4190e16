package matrix_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

const contactPhone = "+15551234567"

// TestBotDMHelp: as a new user would, DM the bot and get help; unknown,
// malformed and unavailable commands are answered too, and "!sb " works in
// other rooms.
func TestBotDMHelp(t *testing.T) {
	e := startWithDendrite(t)
	e.conn.SetCommands(matrix.StubCommands(t))
	alice := e.newUser(t, "alice")
	bot := e.conn.BotUserID().String()
	room := alice.createRoom(t, map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"})
	waitFor(t, 15*time.Second, "bot to join the DM", func() bool { return alice.membership(t, room, bot) == "join" })

	ask := func(text string) string {
		t.Helper()
		cmd := alice.sendText(t, room, text)
		reply := alice.waitEvent(t, room, "answer to "+text, func(evt roomEvent) bool {
			rel, _ := evt.Content["m.relates_to"].(map[string]any)
			inReply, _ := rel["m.in_reply_to"].(map[string]any)
			return evt.Sender == bot && inReply["event_id"] == cmd
		})
		assert.Equal(t, "m.notice", reply.Content["msgtype"], "answers are notices")
		return body(reply)
	}
	assert.Contains(t, ask("help"), "whoami")
	assert.Contains(t, ask("whoami"), alice.id)
	assert.Equal(t, "unknown command, try help", ask("frobnicate"))
	assert.Contains(t, ask("start"), "Usage: start")
	assert.Contains(t, ask("start 12345"), "Usage: start")
	assert.Equal(t, "start is not available yet", ask("start "+contactPhone))
	assert.Equal(t, "link is not available yet", ask("link "+contactPhone))
	assert.Contains(t, ask("admin status"), "only available to bridge admins")

	// In a room that is not a DM with the bot, only "!sb " commands count.
	bob := e.newUser(t, "bob")
	group := alice.createRoom(t, map[string]any{"invite": []string{bot, bob.id}, "preset": "private_chat"})
	bob.join(t, group)
	waitFor(t, 15*time.Second, "bot to join the group", func() bool { return alice.membership(t, group, bot) == "join" })
	alice.sendText(t, group, "help")
	cmd := alice.sendText(t, group, "!sb help")
	reply := alice.waitEvent(t, group, "answer to !sb help", func(evt roomEvent) bool { return evt.Sender == bot && evt.Type == "m.room.message" })
	rel, _ := reply.Content["m.relates_to"].(map[string]any)
	inReply, _ := rel["m.in_reply_to"].(map[string]any)
	assert.Equal(t, cmd, inReply["event_id"], "only the prefixed command is answered")
}

// TestPortalBothWays: a portal created for a loopback contact carries a
// Matrix message to the loopback connector and a loopback message into
// the room from the ghost, with replies, edits, reactions and redactions
// mapped; the contact's phone number appears nowhere on Matrix.
func TestPortalBothWays(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: contactPhone, DisplayName: "+1 (555) 123-4567"}
	chat, err := e.conn.CreatePortal(ctx, matrix.PortalOptions{
		User: idOf(alice), Network: netLoop, Contact: contact, Direct: true,
	})
	require.NoError(t, err)
	room := string(chat)
	_, err = e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: chat},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	alice.join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()
	assert.Equal(t, "join", alice.membership(t, room, ghost), "the ghost is in the portal")

	// Matrix -> loopback, with HTML.
	first := alice.send(t, room, "m.room.message", map[string]any{
		"msgtype": "m.text", "body": "hello **loop**",
		"format": "org.matrix.custom.html", "formatted_body": "hello <strong>loop</strong>",
	})
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.ChatID("chat-1"), sent[0].Chat)
	assert.Equal(t, "hello **loop**", sent[0].Delivery.Event.Content.Body)
	assert.Equal(t, "hello <strong>loop</strong>", sent[0].Delivery.Event.Content.HTML)
	assert.Equal(t, bridge.UserID(alice.id), sent[0].Delivery.Event.Sender.ID)
	e.waitMapped(t, netLoop, sent[0].RemoteID)

	// Loopback -> Matrix, as a reply to alice's message.
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-1",
		Sender: contact, ReplyTo: sent[0].RemoteID,
		Content: &bridge.Content{Type: bridge.MsgText, Body: "hi from loopback"},
	}))
	fromGhost := alice.waitEvent(t, room, "ghost message", func(evt roomEvent) bool {
		return evt.Sender == ghost && body(evt) == "hi from loopback"
	})
	rel, _ := fromGhost.Content["m.relates_to"].(map[string]any)
	inReply, _ := rel["m.in_reply_to"].(map[string]any)
	assert.Equal(t, first, inReply["event_id"], "the reply points at alice's event")
	e.waitMapped(t, bridge.NetworkMatrix, bridge.RemoteID(fromGhost.EventID))

	// Edit, reaction and redaction from Matrix reach the loopback leg.
	alice.send(t, room, "m.room.message", map[string]any{
		"msgtype": "m.text", "body": "* hello again",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "hello again"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": first},
	})
	alice.send(t, room, "m.reaction", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": fromGhost.EventID, "key": "👍"},
	})
	// (Dendrite v0.13.8 does not pass redactions to appservices; see
	// TestMatrixRedaction and TestTransactionEventKinds.)
	sent = e.lb.WaitSent(3, 10*time.Second)
	require.Len(t, sent, 3)
	assert.Equal(t, bridge.KindEdit, sent[1].Kind)
	assert.Equal(t, "hello again", sent[1].Delivery.Event.Content.Body)
	assert.Equal(t, sent[0].RemoteID, sent[1].Delivery.Target)
	assert.Equal(t, bridge.KindReaction, sent[2].Kind)
	assert.Equal(t, "👍", sent[2].Delivery.Event.Reaction)
	assert.Equal(t, bridge.RemoteID("lb-1"), sent[2].Delivery.Target)

	// Edit, reaction and deletion from loopback show up in the room.
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindEdit, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-2", Sender: contact,
		Target: "lb-1", Content: &bridge.Content{Type: bridge.MsgText, Body: "hi, edited"},
	}))
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindReaction, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-3", Sender: contact,
		Target: sent[0].RemoteID, Reaction: "❤️",
	}))
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindDelete, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-4", Sender: contact,
		Target: "lb-1",
	}))
	alice.waitEvent(t, room, "ghost edit", func(evt roomEvent) bool {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		return evt.Sender == ghost && rel["rel_type"] == "m.replace" && rel["event_id"] == fromGhost.EventID
	})
	alice.waitEvent(t, room, "ghost redaction", func(evt roomEvent) bool {
		return evt.Sender == ghost && evt.Type == "m.room.redaction"
	})

	// No phone number on Matrix: ghost ID, display name, room name, topic.
	assertNoPhone(t, "ghost ID", ghost)
	var profile struct {
		DisplayName string `json:"displayname"`
	}
	require.Equal(t, http.StatusOK, alice.do(t, http.MethodGet, "/profile/"+url.PathEscape(ghost)+"/displayname", nil, &profile))
	assert.True(t, strings.HasPrefix(profile.DisplayName, "Contact "), "pseudonym, got %q", profile.DisplayName)
	assertNoPhone(t, "ghost display name", profile.DisplayName)
	var name struct {
		Name string `json:"name"`
	}
	alice.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state/m.room.name/", nil, &name)
	assertNoPhone(t, "room name", name.Name)
	for _, evt := range alice.messages(t, room) {
		if evt.Type == "m.room.topic" || evt.Type == "m.room.name" || evt.Type == "m.room.member" {
			for k, v := range evt.Content {
				if s, ok := v.(string); ok {
					assertNoPhone(t, evt.Type+" "+k, s)
				}
			}
		}
	}
	assert.NotContains(t, e.logs.String(), "5551234567", "the phone number is not logged")
	assert.NotContains(t, e.logs.String(), "hi from loopback", "message bodies are not logged")
	assert.NotContains(t, e.logs.String(), "hello again", "message bodies are not logged")
}

// TestFailedDeliveryNotice: a message that cannot be delivered gets a
// visible notice in its room.
func TestFailedDeliveryNotice(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	chat, err := e.conn.CreatePortal(ctx, matrix.PortalOptions{
		User: idOf(alice), Network: netLoop, Contact: bridge.Sender{ID: "bob", DisplayName: "Bob"}, Direct: true,
	})
	require.NoError(t, err)
	_, err = e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: chat},
		bridge.Leg{Network: netLoop, Chat: "chat-1"})
	require.NoError(t, err)
	room := string(chat)
	alice.join(t, room)
	var name struct {
		Name string `json:"name"`
	}
	alice.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state/m.room.name/", nil, &name)
	assert.Equal(t, "Bob", name.Name, "the room is named after the contact")

	e.lb.OnSend(func(*bridge.Delivery) error { return bridge.Permanent(errInjected) })
	msg := alice.sendText(t, room, "this will fail")
	notice := alice.waitEvent(t, room, "failure notice", func(evt roomEvent) bool {
		return evt.Sender == e.conn.BotUserID().String() && evt.Content["msgtype"] == "m.notice"
	})
	assert.Contains(t, body(notice), "not delivered to loopb")
	assert.Contains(t, body(notice), errInjected.Error())
	rel, _ := notice.Content["m.relates_to"].(map[string]any)
	inReply, _ := rel["m.in_reply_to"].(map[string]any)
	assert.Equal(t, msg, inReply["event_id"])
	enc, err := e.conn.IsEncrypted(ctx, chat)
	require.NoError(t, err)
	assert.False(t, enc)
}

func assertNoPhone(t *testing.T, what, s string) {
	t.Helper()
	assert.False(t, phone.Contains(s), "%s %q looks like a phone number", what, s)
	assert.NotContains(t, s, "5551234567", "%s", what)
}

// TestMediaBothWays: an attachment from the loopback leg is uploaded to
// the homeserver's media repository and sent by the ghost; an image
// posted on Matrix is downloaded by the loopback leg through the
// connector (authenticated media when the homeserver offers it).
func TestMediaBothWays(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: "carol", DisplayName: "Carol"}
	room := e.loopPortal(t, idOf(alice), contact)
	alice.join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()

	png := []byte("\x89PNG\r\n\x1a\nnot really a png")
	e.lb.PutMedia("ref-1", png)
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-img", Sender: contact,
		Content: &bridge.Content{Type: bridge.MsgImage, Body: "a caption", Media: &bridge.Media{
			Ref: "ref-1", MimeType: "image/png", FileName: "pic.png", Width: 4, Height: 3,
		}},
	}))
	img := alice.waitEvent(t, room, "ghost image", func(evt roomEvent) bool {
		return evt.Sender == ghost && evt.Content["msgtype"] == "m.image"
	})
	assert.Equal(t, "a caption", body(img))
	assert.Equal(t, "pic.png", img.Content["filename"])
	mxc, _ := img.Content["url"].(string)
	require.True(t, strings.HasPrefix(mxc, "mxc://"), "url %q", mxc)

	// Matrix -> loopback: the loopback connector downloads the bytes.
	alice.send(t, room, "m.room.message", map[string]any{
		"msgtype": "m.image", "body": "pic.png", "url": mxc,
		"info": map[string]any{"mimetype": "image/png", "size": len(png)},
	})
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.MsgImage, sent[0].Delivery.Event.Content.Type)
	assert.Equal(t, png, sent[0].Media)
}

// TestTypingAndReceipts: typing and read receipts from the loopback leg
// are shown by the ghost.
func TestTypingAndReceipts(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: "dave", DisplayName: "Dave"}
	room := e.loopPortal(t, idOf(alice), contact)
	alice.join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()
	msg := alice.sendText(t, room, "are you there?")
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.Len(t, sent, 1)
	e.waitMapped(t, netLoop, sent[0].RemoteID)

	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-1", Sender: contact,
		Content: &bridge.Content{Type: bridge.MsgText, Body: "yes"},
	}))
	alice.waitEvent(t, room, "ghost reply", func(evt roomEvent) bool { return evt.Sender == ghost && evt.Type == "m.room.message" })
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindReadReceipt, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-r1", Sender: contact,
		Target: sent[0].RemoteID,
	}))
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindTyping, Source: bridge.Leg{Chat: "chat-1"}, Sender: contact, Typing: true,
	}))
	waitFor(t, 10*time.Second, "receipt and typing in alice's sync", func() bool {
		var resp struct {
			Rooms struct {
				Join map[string]struct {
					Ephemeral struct {
						Events []struct {
							Type    string         `json:"type"`
							Content map[string]any `json:"content"`
						} `json:"events"`
					} `json:"ephemeral"`
				} `json:"join"`
			} `json:"rooms"`
		}
		alice.do(t, http.MethodGet, "/sync?timeout=0", nil, &resp)
		var read, typing bool
		for _, evt := range resp.Rooms.Join[room].Ephemeral.Events {
			switch evt.Type {
			case "m.receipt":
				receipts, _ := evt.Content[msg].(map[string]any)
				users, _ := receipts["m.read"].(map[string]any)
				_, read = users[ghost]
			case "m.typing":
				ids, _ := evt.Content["user_ids"].([]any)
				for _, u := range ids {
					typing = typing || u == ghost
				}
			}
		}
		return read && typing
	})
}

// TestStartCommand: `start +N` creates a portal through the router to the
// first connector that reaches phone numbers, says which network carries
// it and whether it is encrypted, and returns the same room the second
// time; the number never appears on Matrix.
func TestStartCommand(t *testing.T) {
	e := startWithDendrite(t)
	reg := commands.New(commands.Options{})
	require.NoError(t, reg.Register(matrix.StartCommand(matrix.NewRouterStarter(e.router, e.conn, matrix.StartOptions{}))))
	e.conn.SetCommands(reg)
	alice := e.newUser(t, "alice")
	bot := e.conn.BotUserID().String()
	dm := alice.createRoom(t, map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"})
	waitFor(t, 15*time.Second, "bot to join the DM", func() bool { return alice.membership(t, dm, bot) == "join" })

	ask := func(text string) string {
		t.Helper()
		cmd := alice.sendText(t, dm, text)
		reply := alice.waitEvent(t, dm, "answer to "+text, func(evt roomEvent) bool {
			rel, _ := evt.Content["m.relates_to"].(map[string]any)
			inReply, _ := rel["m.in_reply_to"].(map[string]any)
			return evt.Sender == bot && inReply["event_id"] == cmd
		})
		return body(reply)
	}
	answer := ask("start " + contactPhone)
	assert.Contains(t, answer, "Started a chat")
	assert.Contains(t, answer, "carried by "+string(netLoop))
	assert.Contains(t, answer, "not end-to-end encrypted")
	assertNoPhone(t, "start answer", answer)
	again := ask("start " + contactPhone)
	assert.Contains(t, again, "You already have")

	// The portal invite reached alice; the room and ghost show no number.
	var sync struct {
		Rooms struct {
			Invite map[string]any `json:"invite"`
		} `json:"rooms"`
	}
	alice.do(t, http.MethodGet, "/sync?timeout=0", nil, &sync)
	require.Len(t, sync.Rooms.Invite, 1)
	for room := range sync.Rooms.Invite {
		assert.Contains(t, answer, url.PathEscape(room), "the answer links the portal")
		alice.join(t, room)
		var name struct {
			Name string `json:"name"`
		}
		alice.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state/m.room.name/", nil, &name)
		assert.True(t, strings.HasPrefix(name.Name, "Contact "), "room name %q", name.Name)
		assertNoPhone(t, "room name", name.Name)
		ghost := e.conn.GhostUserID(netLoop, contactPhone).String()
		assertNoPhone(t, "ghost", ghost)
		assert.Equal(t, "join", alice.membership(t, room, ghost))

		alice.sendText(t, room, "hello number")
		sent := e.lb.WaitSent(1, 10*time.Second)
		require.Len(t, sent, 1)
		assert.Equal(t, bridge.ChatID("phone-1"), sent[0].Chat)
	}
	assert.NotContains(t, e.logs.String(), "5551234567", "the number is not logged")
}
