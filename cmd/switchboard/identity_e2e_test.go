package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

// matrixUser is a Matrix user the test drives through the client API.
type matrixUser struct {
	id, token string
	hs        *dendrite.Server
	txn       int
}

func (u *matrixUser) say(t *testing.T, room, body string) {
	t.Helper()
	u.txn++
	require.Equal(t, http.StatusOK, u.hs.DoJSON(t, http.MethodPut, fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s-%d",
		url.PathEscape(room), strings.TrimPrefix(u.id, "@")[:3], u.txn), u.token, map[string]any{"msgtype": "m.text", "body": body}, nil))
}

func (u *matrixUser) join(t *testing.T, room string) {
	t.Helper()
	require.Equal(t, http.StatusOK, u.hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(room), u.token, map[string]any{}, nil))
}

// ask sends a command in room and waits for the bot's notice answering it
// (a reply to the command).
func (u *matrixUser) ask(t *testing.T, room, bot, command string) string {
	t.Helper()
	u.txn++
	var sent struct {
		EventID string `json:"event_id"`
	}
	require.Equal(t, http.StatusOK, u.hs.DoJSON(t, http.MethodPut, fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s-%d",
		url.PathEscape(room), strings.TrimPrefix(u.id, "@")[:3], u.txn), u.token, map[string]any{"msgtype": "m.text", "body": command}, &sent))
	var answer string
	require.Eventually(t, func() bool {
		for _, ev := range messages(t, u.hs, u.token, room) {
			rel, _ := ev.Content["m.relates_to"].(map[string]any)
			inReply, _ := rel["m.in_reply_to"].(map[string]any)
			if ev.Sender == bot && inReply["event_id"] == sent.EventID {
				answer, _ = ev.Content["body"].(string)
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "no answer to %q", command)
	return answer
}

// dmWithBot creates the user's direct chat with the bot and waits for its
// greeting.
func (u *matrixUser) dmWithBot(t *testing.T, bot string) string {
	t.Helper()
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, u.hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", u.token,
		map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	waitNotice(t, u.hs, u.token, created.RoomID, bot, "help")
	return created.RoomID
}

// visible returns everything a user sees on Matrix — full /sync (joined,
// invited and left rooms: state, timelines, notices, member names, ghost
// IDs) and the profile of every member — as JSON, without the messages
// the user typed themselves.
func (u *matrixUser) visible(t *testing.T) string {
	t.Helper()
	filter := url.QueryEscape(`{"room":{"include_leave":true,"timeline":{"limit":100}}}`)
	var sync map[string]any
	require.Equal(t, http.StatusOK, u.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/sync?timeout=0&full_state=true&filter="+filter, u.token, nil, &sync))
	members := map[string]bool{}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if x["sender"] == u.id && x["type"] == "m.room.message" {
				return nil // typed by the user
			}
			if x["type"] == "m.room.member" {
				if key, ok := x["state_key"].(string); ok {
					members[key] = true
				}
			}
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	walk(sync)
	profiles := map[string]any{}
	for m := range members {
		var p map[string]any
		u.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(m), u.token, nil, &p)
		profiles[m] = p
	}
	out, err := json.Marshal([]any{sync, profiles})
	require.NoError(t, err)
	return string(out)
}

var roomLinkRE = regexp.MustCompile(`!([^/?#\s]+)`)

// roomIn returns the room ID in a bot answer's matrix.to link.
func roomIn(t *testing.T, answer string) string {
	t.Helper()
	room := roomLinkRE.FindString(strings.ReplaceAll(answer, "%21", "!"))
	room, _ = url.PathUnescape(strings.TrimRight(room, ".:"))
	require.NotEmpty(t, room, "no room in %q", answer)
	return room
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// TestIdentityEndToEnd: a new user links a number with a code sent by SMS
// (wrong, reused and locked codes refused), another user's `start` of that
// number then reaches them natively on Matrix with no SMS sent, and after
// `unlink` the same `start` goes to SMS again. The number never shows on
// Matrix, in the logs at debug level or in the database files — until its
// owner says `reveal on`, and then only as their contact name.
func TestIdentityEndToEnd(t *testing.T) {
	d := startSMSDaemon(t, "debug")
	hs, bot := d.hs, d.bot
	alice := &matrixUser{id: idOfAlice(hs), token: d.token, hs: hs, txn: 100}
	carolID, carolToken := hs.RegisterUser(t, "carol", "correct horse battery")
	carol := &matrixUser{id: carolID, token: carolToken, hs: hs}
	carolDM := carol.dmWithBot(t, bot)

	codeSent := func() string {
		t.Helper()
		sent := d.fake.sent()
		last := sent[len(sent)-1]
		require.Equal(t, e2eContact, last.Get("To"), "the code goes to the number being linked")
		m := sixDigits.FindStringSubmatch(last.Get("Body"))
		require.NotNil(t, m, "no code in the SMS")
		return m[1]
	}
	wrongCode := func(code string) string {
		if code == "000000" {
			return "000001"
		}
		return "000000"
	}

	// link → the code arrives by SMS; nothing is linked yet.
	before := len(d.fake.sent())
	answer := carol.ask(t, carolDM, bot, "link "+e2eContact)
	require.Contains(t, answer, "by sms")
	require.Len(t, d.fake.sent(), before+1)
	code := codeSent()
	require.NotContains(t, answer, code)
	require.Contains(t, alice.ask(t, d.dm, bot, "start "+e2eContact), "carried by sms", "not linked before verify")

	// verify: a wrong code is refused, the right one links, and only once.
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+wrongCode(code)), "not right")
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+code), "Linked")
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+code), "Not linked", "a used code is refused")
	links := carol.ask(t, carolDM, bot, "links")
	require.Contains(t, links, "…"+e2eContact[len(e2eContact)-4:])
	require.Contains(t, carol.ask(t, carolDM, bot, "whoami"), "Linked addresses")

	// Alice's start now reaches carol natively on Matrix: no SMS.
	sms := len(d.fake.sent())
	answer = alice.ask(t, d.dm, bot, "start "+e2eContact)
	require.Contains(t, answer, "Matrix room with the account linked to that number")
	require.Contains(t, answer, "end-to-end encrypted")
	native := roomIn(t, answer)
	waitNotice(t, hs, carolToken, carolDM, bot, "started a chat with you through your linked number")
	alice.join(t, native)
	carol.join(t, native)
	var members struct {
		Joined map[string]any `json:"joined"`
	}
	require.Eventually(t, func() bool {
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(native)+"/joined_members", carolToken, nil, &members)
		_, a := members.Joined[alice.id]
		_, c := members.Joined[carol.id]
		_, b := members.Joined[bot]
		return a && c && !b && len(members.Joined) == 2
	}, 10*time.Second, 100*time.Millisecond, "native room is not just alice and carol")
	var enc map[string]any
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(native)+"/state/m.room.encryption/", carolToken, nil, &enc))
	require.Equal(t, "m.megolm.v1.aes-sha2", enc["algorithm"])
	again := alice.ask(t, d.dm, bot, "start "+e2eContact)
	require.Contains(t, again, "You already have")
	require.Equal(t, native, roomIn(t, again))
	require.Len(t, d.fake.sent(), sms, "no SMS for a native route")

	// unlink → the same start goes to SMS again (alice's SMS chat).
	require.Contains(t, carol.ask(t, carolDM, bot, "unlink "+e2eContact), "removed 1 route")
	answer = alice.ask(t, d.dm, bot, "start "+e2eContact)
	require.Contains(t, answer, "carried by sms")
	require.Equal(t, d.portal, roomIn(t, answer))

	// Too many tries lock a code, even the right one afterwards.
	carol.ask(t, carolDM, bot, "link "+e2eContact)
	code = codeSent()
	for i := 0; i < 4; i++ {
		require.Contains(t, carol.ask(t, carolDM, bot, "verify "+wrongCode(code)), "not right")
	}
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+wrongCode(code)), "too many wrong codes")
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+code), "too many wrong codes")
	require.Contains(t, carol.ask(t, carolDM, bot, "links"), "no phone number linked")

	// The contact texts in: one ghost, no number.
	inbound(t, d, "SM"+strings.Repeat("b", 32), "canary reply")
	require.Eventually(t, func() bool {
		for _, ev := range messages(t, hs, alice.token, d.portal) {
			if b, _ := ev.Content["body"].(string); b == "canary reply" {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "inbound SMS not in the portal")

	// Canary: the number appears nowhere on Matrix (apart from what the
	// users typed), nor in the debug logs or the database files.
	for _, u := range []*matrixUser{alice, carol} {
		require.NotContains(t, u.visible(t), contactNoPl, "visible to %s", u.id)
	}
	d.stop()
	require.NotContains(t, d.logs.String(), contactNoPl)
	require.NotContains(t, d.logs.String(), code)
	require.NotContains(t, d.logs.String(), "canary reply")
	requireNotInDBFiles(t, d.dir, contactNoPl, "canary reply")

	// With `reveal on` the owner's number is their name where they write
	// from it.
	d.restart()
	require.Contains(t, carol.ask(t, carolDM, bot, "reveal on"), "Reveal is on")
	carol.ask(t, carolDM, bot, "link "+e2eContact)
	require.Contains(t, carol.ask(t, carolDM, bot, "verify "+codeSent()), "Linked")
	// Carol prefers SMS: alice (who allowed SMS) reaches her there.
	require.Contains(t, carol.ask(t, carolDM, bot, "prefer sms"), "now go to sms")
	answer = alice.ask(t, d.dm, bot, "start "+e2eContact)
	require.Contains(t, answer, "carried by sms")
	require.Equal(t, d.portal, roomIn(t, answer))
	inbound(t, d, "SM"+strings.Repeat("c", 32), "revealed reply")
	require.Eventually(t, func() bool {
		for _, ev := range messages(t, hs, alice.token, d.portal) {
			if b, _ := ev.Content["body"].(string); b == "revealed reply" {
				var p map[string]any
				hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(ev.Sender), alice.token, nil, &p)
				return p["displayname"] == e2eContact
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "the revealed number is not the contact's name")
}

// inbound posts a signed Twilio webhook: an SMS from the contact.
func inbound(t *testing.T, d *smsDaemon, sid, body string) {
	t.Helper()
	form := url.Values{
		"AccountSid": {e2eSID}, "MessageSid": {sid},
		"From": {e2eContact}, "To": {e2ePool}, "Body": {body}, "NumMedia": {"0"},
	}
	incoming := "http://" + d.listen + "/sms/twilio/incoming"
	require.Eventually(t, func() bool {
		req, err := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSign(t, incoming, form))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "webhook not accepted")
}
