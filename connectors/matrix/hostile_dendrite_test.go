package matrix_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
)

// repliesFrom returns the events from sender that reply to event in room.
func repliesFrom(t testing.TB, u *user, room, sender, event string) []roomEvent {
	var out []roomEvent
	for _, evt := range u.messages(t, room) {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		inReply, _ := rel["m.in_reply_to"].(map[string]any)
		if evt.Sender == sender && inReply["event_id"] == event {
			out = append(out, evt)
		}
	}
	return out
}

// TestStrangerCannotStallTheBridge: anyone may invite the bot (the default
// "*": relay). A stranger's room with the bot gets a negative disappearing
// timer, 20 events encrypted with sessions the bridge will never have,
// malformed contents, and a null event (injected as the homeserver, which
// would not send one); meanwhile a legitimate user's whoami is answered
// and their portal message delivered within 10 s, each exactly once.
// Before, the timer's error made every transaction fail for ever.
func TestStrangerCannotStallTheBridge(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) {
		cfg.Permissions = map[string]string{"*": config.PermRelay, "@alice:localhost": config.PermUser, "@admin:localhost": config.PermAdmin}
	})
	alice := e.newUser(t, "alice")
	mallory := e.newUser(t, "mallory")
	bot := e.conn.BotUserID().String()
	dm := alice.createRoom(t, map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"})
	waitFor(t, 15*time.Second, "bot to join the DM", func() bool { return alice.membership(t, dm, bot) == "join" })
	portal := e.loopPortal(t, idOf(alice), bridge.Sender{ID: "contact-1", DisplayName: "Contact"})
	alice.join(t, portal)

	evil := mallory.createRoom(t, map[string]any{"invite": []string{bot}, "preset": "private_chat"})
	waitFor(t, 15*time.Second, "bot to join the stranger's room", func() bool { return mallory.membership(t, evil, bot) == "join" })
	status := mallory.do(t, http.MethodPut, "/rooms/"+url.PathEscape(evil)+"/state/com.beeper.disappearing_timer/",
		map[string]any{"type": "after_send", "timer": -1000}, nil)
	require.Equal(t, http.StatusOK, status)
	for i := range 20 {
		mallory.send(t, evil, "m.room.encrypted", map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnB0ZXN0", "device_id": "EVILDEVICE",
			"sender_key": "c2VuZGVyIGtleSB0aGF0IGRvZXMgbm90IGV4aXN0", "session_id": fmt.Sprintf("no-such-session-%d", i)})
	}
	mallory.send(t, evil, "m.room.message", map[string]any{"msgtype": "m.text", "body": 123})
	mallory.send(t, evil, "m.room.message", map[string]any{"msgtype": "m.image", "body": "x.png", "info": map[string]any{"size": -1}})
	mallory.send(t, evil, "m.reaction", map[string]any{"m.relates_to": "nonsense"})
	mallory.send(t, evil, "m.room.message", map[string]any{"msgtype": "m.text", "body": "x",
		"com.beeper.disappearing_timer": map[string]any{"type": "after_send", "timer": -5}})
	require.Equal(t, http.StatusOK, putRaw(t, e.conn.AppserviceHandler(), e.cfg.Appservice.HSToken, "null-event", "null"))

	cmd := alice.sendText(t, dm, "whoami")
	msg := alice.sendText(t, portal, "hello contact")
	waitFor(t, 10*time.Second, "whoami answered", func() bool { return len(repliesFrom(t, alice, dm, bot, cmd)) > 0 })
	sent := e.lb.WaitSent(1, 10*time.Second)
	require.NotEmpty(t, sent, "the portal message is delivered")

	// Exactly once, also after the homeserver had every chance to retry.
	time.Sleep(2 * time.Second)
	assert.Len(t, repliesFrom(t, alice, dm, bot, cmd), 1, "whoami answered once")
	delivered := 0
	for _, s := range e.lb.Sent() {
		if s.Delivery.Event.SourceID == bridge.RemoteID(msg) {
			delivered++
		}
	}
	assert.Equal(t, 1, delivered, "the portal message is delivered once")
	assert.Len(t, e.lb.Sent(), 1, "nothing from the stranger's room is bridged")
}

// TestPortalBridgesOnlyPermittedSenders: in a portal, the owner is
// bridged; another user with relay permission is bridged with their name
// (a guest); a user without permission is not bridged and is told so; and
// only the owner (not other members) may invite.
func TestPortalBridgesOnlyPermittedSenders(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) {
		cfg.Permissions = map[string]string{"@alice:localhost": config.PermUser, "@carol:localhost": config.PermRelay}
	})
	alice := e.newUser(t, "alice")
	carol := e.newUser(t, "carol")
	eve := e.newUser(t, "eve")
	bot := e.conn.BotUserID().String()
	portal := e.loopPortal(t, idOf(alice), bridge.Sender{ID: "contact-1", DisplayName: "Contact"})
	alice.join(t, portal)
	for _, u := range []*user{carol, eve} {
		require.Equal(t, http.StatusOK, alice.do(t, http.MethodPost, "/rooms/"+url.PathEscape(portal)+"/invite", map[string]any{"user_id": u.id}, nil))
		u.join(t, portal)
	}
	outsider := e.newUser(t, "outsider")
	assert.Equal(t, http.StatusForbidden, eve.do(t, http.MethodPost, "/rooms/"+url.PathEscape(portal)+"/invite", map[string]any{"user_id": outsider.id}, nil),
		"members other than the owner may not invite")

	fromEve := eve.sendText(t, portal, "eve speaking")
	notice := eve.waitEvent(t, portal, "eve told", func(evt roomEvent) bool { return len(repliesFrom(t, eve, portal, bot, fromEve)) > 0 })
	_ = notice
	assert.Contains(t, body(repliesFrom(t, eve, portal, bot, fromEve)[0]), "not allowed")
	fromCarol := carol.sendText(t, portal, "carol speaking")
	fromAlice := alice.sendText(t, portal, "alice speaking")
	sent := e.lb.WaitSent(2, 10*time.Second)
	require.Len(t, sent, 2)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, e.lb.Sent(), 2, "eve's message is not bridged")
	byID := map[bridge.RemoteID]bridge.Sender{}
	for _, s := range sent {
		byID[s.Delivery.Event.SourceID] = s.Delivery.Event.Sender
	}
	assert.True(t, byID[bridge.RemoteID(fromCarol)].Guest, "carol is a guest")
	assert.Equal(t, "carol", byID[bridge.RemoteID(fromCarol)].DisplayName)
	assert.False(t, byID[bridge.RemoteID(fromAlice)].Guest, "the owner is not a guest")
}
