package provision_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/phone"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// botAnswer is what the Matrix bot answers user for text: the registry's
// answer, with numbers redacted unless the command is verbatim.
func (h *harness) botAnswer(user string, level commands.Level, text string) string {
	name, args, line := commands.Parse(text)
	ans := h.reg.Run(context.Background(), &commands.Request{
		User: bridge.Address{Network: bridge.NetworkMatrix, ID: user}, Level: level, Name: name, Args: args, Line: line,
	})
	if ans.Verbatim {
		return ans.Text
	}
	return phone.Redact(ans.Text)
}

// Requests need the shared secret (or an OpenID token) and a user ID;
// anything else is 401 with SB_UNAUTHORIZED. With the secret turned off,
// the secret itself no longer works.
func TestAuth(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true})
	for _, tc := range []struct {
		name, user, auth string
		status           int
	}{
		{"no credentials", alice, "", http.StatusUnauthorized},
		{"not bearer", alice, "Basic " + secret, http.StatusUnauthorized},
		{"wrong secret", alice, "Bearer " + secret + "x", http.StatusUnauthorized},
		{"secret prefix", alice, "Bearer " + secret[:20], http.StatusUnauthorized},
		{"no user_id", "", "Bearer " + secret, http.StatusUnauthorized},
		{"user_id not a user", "alice", "Bearer " + secret, http.StatusUnauthorized},
		{"good secret", alice, "Bearer " + secret, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := h.do(call{method: http.MethodGet, path: "whoami", user: tc.user, auth: tc.auth})
			if tc.status == http.StatusOK {
				require.Equal(t, http.StatusOK, status, "%v", out)
				require.Equal(t, alice, out["user_id"])
				return
			}
			requireError(t, status, out, tc.status, "SB_UNAUTHORIZED")
		})
	}

	off := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true, noSecret: true})
	status, out := off.as(alice, call{method: http.MethodGet, path: "whoami"})
	requireError(t, status, out, http.StatusUnauthorized, "SB_UNAUTHORIZED")
}

// Permission levels are the bot's: a user without access is refused
// everything, relay users may look but not start, only admins log in the
// relay account — with the bot's own answers.
func TestPermissions(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{})
	status, out := h.as(stranger, call{method: http.MethodGet, path: "whoami"})
	requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
	require.Equal(t, "You are not allowed to use this bridge.", out["error"])

	status, out = h.as(relayUser, call{method: http.MethodGet, path: "whoami"})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "relay", out["permission"])

	for _, c := range []struct {
		call call
		bot  string
	}{
		{call{method: http.MethodPost, path: "start", body: map[string]any{"phone": numStarted}}, "start " + numStarted},
		{call{method: http.MethodPost, path: "link", body: map[string]any{"phone": numLinked}}, "link " + numLinked},
		{call{method: http.MethodPut, path: "preferences", body: map[string]any{"sms": true}}, "sms on"},
		{call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr"}}, "login whatsapp"},
	} {
		status, out = h.as(relayUser, c.call)
		requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
		require.Equal(t, h.botAnswer(relayUser, commands.LevelRelay, c.bot), out["error"], c.bot)
	}

	status, out = h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr", "relay": true}})
	requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
	require.Equal(t, "login is only available to bridge admins.", out["error"])
	status, out = h.as(alice, call{method: http.MethodPost, path: "logout/whatsapp", body: map[string]any{"relay": true}})
	requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
	h.requireNoNumbers()
}

// whoami is structured: permission, networks with the WhatsApp login
// state and flows, links (masked), preferences.
func TestWhoami(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{})
	status, out := h.as(alice, call{method: http.MethodGet, path: "whoami"})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "user", out["permission"])
	require.Equal(t, false, out["suspended"])
	require.Equal(t, []any{}, out["links"])
	require.Equal(t, map[string]any{"sms": false, "reveal": false, "prefer": ""}, out["preferences"])
	nets := out["networks"].([]any)
	require.Len(t, nets, 2)
	require.Equal(t, "matrix", nets[0].(map[string]any)["id"])
	wa := nets[1].(map[string]any)
	require.Equal(t, "whatsapp", wa["id"])
	require.Nil(t, wa["login"], "not logged in")
	require.Equal(t, false, wa["login_in_progress"])
	require.Equal(t, false, wa["relay_available"])
	require.Equal(t, []any{"qr", "pairing_code"}, wa["login_flows"])
}

// link, verify, unlink and the preferences run the identity commands:
// the bot's answers, the links masked, bad input refused with nothing
// changed.
func TestLinkVerifyUnlinkPreferences(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := newHarness(t, dbo, harnessOpts{noWhatsApp: true})
		post := func(path string, body any) (int, map[string]any) {
			return h.as(alice, call{method: http.MethodPost, path: path, body: body})
		}
		status, out := post("link", map[string]any{"phone": "4155550199"})
		requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
		require.Equal(t, h.botAnswer(alice, commands.LevelUser, "link 4155550199"), out["error"], "the bot's refusal")

		status, out = post("link", map[string]any{"phone": "+1 (415) 555-0199"})
		require.Equal(t, http.StatusOK, status, "%v", out)
		require.NotEmpty(t, out["message"])

		status, out = post("verify", map[string]any{"code": "12"})
		requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
		status, out = post("verify", map[string]any{"code": "000000"})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, false, out["linked"])
		require.Equal(t, []any{}, out["links"])

		status, out = post("verify", map[string]any{"code": h.codes.lastCode(t)})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, true, out["linked"], "%v", out)
		links := out["links"].([]any)
		require.Len(t, links, 1)
		require.Equal(t, "…0199", links[0].(map[string]any)["number"])

		status, out = h.as(alice, call{method: http.MethodPut, path: "preferences", body: map[string]any{"sms": true, "prefer": "WhatsApp"}})
		require.Equal(t, http.StatusOK, status, "%v", out)
		require.Equal(t, map[string]any{"sms": true, "reveal": false, "prefer": "whatsapp"}, out["preferences"])
		msgs := out["messages"].([]any)
		require.Len(t, msgs, 2)
		require.Equal(t, h.botAnswer(alice, commands.LevelUser, "sms on"), msgs[0])

		status, out = h.as(alice, call{method: http.MethodPut, path: "preferences", body: map[string]any{"sms": false, "prefer": "pigeon"}})
		requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
		status, out = h.as(alice, call{method: http.MethodGet, path: "preferences"})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, map[string]any{"sms": true, "reveal": false, "prefer": "whatsapp"}, out, "nothing changed")
		status, out = h.as(alice, call{method: http.MethodPut, path: "preferences", body: map[string]any{}})
		requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")

		status, out = h.as(alice, call{method: http.MethodGet, path: "whoami"})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "…0199", out["links"].([]any)[0].(map[string]any)["number"])

		status, out = post("unlink", map[string]any{"phone": "+14155550199"})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, []any{}, out["links"])
		require.Contains(t, out["message"], "Unlinked …0199")
		h.requireNoNumbers()
	})
}

// start answers what the bot answers, word for word, for every case the
// routing has; the status and errcode say which case it was, and a
// started chat comes with its room and how it is carried.
func TestStartParity(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true})
	for _, tc := range []struct {
		phone  string
		status int
		code   string
	}{
		{numStarted, http.StatusOK, ""},
		{"+1 415-555-0100", http.StatusOK, ""},
		{numLimited, http.StatusTooManyRequests, "SB_RATE_LIMITED"},
		{numSMSOnly, http.StatusConflict, "SB_SMS_NOT_OPTED_IN"},
		{numNoNetwork, http.StatusUnprocessableEntity, "SB_REFUSED"},
		{numSuspended, http.StatusForbidden, "SB_FORBIDDEN"},
		{"4155550100", http.StatusBadRequest, "SB_BAD_REQUEST"},
		{"", http.StatusBadRequest, "SB_BAD_REQUEST"},
		{"+1 415 555 0100\nverify 123456", http.StatusBadRequest, "SB_BAD_REQUEST"},
	} {
		t.Run(tc.phone, func(t *testing.T) {
			status, out := h.as(alice, call{method: http.MethodPost, path: "start", body: map[string]any{"phone": tc.phone}})
			bot := h.botAnswer(alice, commands.LevelUser, "start "+strings.Join(strings.Fields(tc.phone), " "))
			if tc.code == "" {
				require.Equal(t, http.StatusOK, status, "%v", out)
				require.Equal(t, bot, out["message"])
				require.Equal(t, portal, out["room_id"])
				require.Equal(t, "whatsapp", out["network"])
				require.Equal(t, true, out["encrypted"])
				return
			}
			requireError(t, status, out, tc.status, tc.code)
			require.Equal(t, bot, out["error"], "the bot's answer")
			if tc.code == "SB_RATE_LIMITED" {
				require.Equal(t, float64(10*time.Minute/time.Millisecond), out["retry_after_ms"])
			}
		})
	}
	h.requireNoNumbers()
}

// retention sets the timer of the user's own portal with the bot's
// answer; other rooms are not found, bad values refused.
func TestRetention(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true})
	put := func(user, room, value string) (int, map[string]any) {
		return h.as(user, call{method: http.MethodPut, path: "conversations/" + room + "/retention", body: map[string]any{"retention": value}})
	}
	status, out := put(alice, "%21portal%3Aexample.org", "7d")
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "Messages in this conversation are now kept for 7d.", out["message"])

	status, out = put(admin, "%21portal%3Aexample.org", "7d")
	requireError(t, status, out, http.StatusNotFound, "SB_NOT_FOUND")
	status, out = put(alice, "%21other%3Aexample.org", "7d")
	requireError(t, status, out, http.StatusNotFound, "SB_NOT_FOUND")
	status, out = put(alice, "%21portal%3Aexample.org", "forever")
	requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
	status, out = put(alice, "%21portal%3Aexample.org", "0s")
	requireError(t, status, out, http.StatusUnprocessableEntity, "SB_REFUSED")
	require.Contains(t, out["error"], "Could not change retention")
	status, out = put(relayUser, "%21portal%3Aexample.org", "7d")
	requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
}

// A QR login runs entirely through the API on a WhatsApp device: start,
// poll the codes (each new one a new seq), pair, done; whoami shows the
// login, a second login is a conflict, logout ends it.
func TestWhatsAppQRLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		h := newHarness(t, dbo, harnessOpts{})
		status, out := h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr"}})
		require.Equal(t, http.StatusOK, status, "%v", out)
		loginID := out["login_id"].(string)
		require.NotEmpty(t, loginID)
		step := out["step"].(map[string]any)
		require.Contains(t, []any{"waiting", "qr"}, step["type"])

		poll := func(since int) map[string]any {
			t.Helper()
			status, out := h.as(alice, call{method: http.MethodGet, path: "login/whatsapp/" + loginID + "?wait=10&since=" + itoa(since)})
			require.Equal(t, http.StatusOK, status, "%v", out)
			return out
		}
		// The first code WhatsApp gave.
		var seq int
		require.Eventually(t, func() bool {
			out = poll(seq)
			seq = int(out["seq"].(float64))
			return out["step"].(map[string]any)["type"] == "qr"
		}, 20*time.Second, 10*time.Millisecond)
		require.Equal(t, "2@first-qr", out["step"].(map[string]any)["payload"])

		status, who := h.as(alice, call{method: http.MethodGet, path: "whoami"})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, true, who["networks"].([]any)[1].(map[string]any)["login_in_progress"])

		dev := h.sessions.last()
		go dev.code("2@second-qr")
		out = poll(seq)
		require.Equal(t, seq+1, int(out["seq"].(float64)), "a new code is a new step")
		require.Equal(t, "2@second-qr", out["step"].(map[string]any)["payload"])
		seq++

		jid := types.NewJID("14155550199", types.DefaultUserServer)
		go dev.pair(jid)
		require.Eventually(t, func() bool {
			out = poll(seq)
			seq = int(out["seq"].(float64))
			return out["done"] == true
		}, 20*time.Second, 10*time.Millisecond)
		require.Equal(t, "done", out["step"].(map[string]any)["type"])
		require.Equal(t, "You are now logged in to WhatsApp.", out["step"].(map[string]any)["text"])

		require.Eventually(t, func() bool {
			_, who = h.as(alice, call{method: http.MethodGet, path: "whoami"})
			login, _ := who["networks"].([]any)[1].(map[string]any)["login"].(map[string]any)
			return login != nil && login["state"] == "connected"
		}, 10*time.Second, 20*time.Millisecond)

		// Another user cannot see the login.
		status, out = h.as(admin, call{method: http.MethodGet, path: "login/whatsapp/" + loginID})
		requireError(t, status, out, http.StatusNotFound, "SB_NOT_FOUND")

		status, out = h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{}})
		requireError(t, status, out, http.StatusConflict, "SB_CONFLICT")
		require.Contains(t, out["error"], "already logged in")

		status, out = h.as(alice, call{method: http.MethodPost, path: "logout/whatsapp"})
		require.Equal(t, http.StatusOK, status, "%v", out)
		require.NotEmpty(t, out["message"])
		_, who = h.as(alice, call{method: http.MethodGet, path: "whoami"})
		require.Nil(t, who["networks"].([]any)[1].(map[string]any)["login"])
		h.requireNoNumbers()
	})
}

// A pairing-code login gives the code as the step's payload; the number
// goes to WhatsApp and never comes back.
func TestWhatsAppPairingCodeLogin(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{})
	status, out := h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "pairing_code"}})
	requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
	status, out = h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr", "phone": numLinked}})
	requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")
	status, out = h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "pairing_code", "phone": "0415 555 0199"}})
	requireError(t, status, out, http.StatusBadRequest, "SB_BAD_REQUEST")

	status, out = h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "pairing_code", "phone": "+1 415 555 0199"}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	step := out["step"].(map[string]any)
	require.Equal(t, "code", step["type"])
	require.Equal(t, "ABCD-EFGH", step["payload"])
	require.Contains(t, step["text"], "ABCD-EFGH")
	dev := h.sessions.last()
	require.Equal(t, []string{numLinked}, dev.paired)

	status, again := h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr"}})
	requireError(t, status, again, http.StatusConflict, "SB_CONFLICT")

	go dev.pair(types.NewJID("14155550199", types.DefaultUserServer))
	loginID := out["login_id"].(string)
	require.Eventually(t, func() bool {
		_, out = h.as(alice, call{method: http.MethodGet, path: "login/whatsapp/" + loginID + "?since=1&wait=5"})
		return out["done"] == true
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "done", out["step"].(map[string]any)["type"])
	h.requireNoNumbers()
}

// Without WhatsApp enabled, logins and logouts are unsupported.
func TestWhatsAppNotConfigured(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true})
	status, out := h.as(alice, call{method: http.MethodPost, path: "login/whatsapp", body: map[string]any{"method": "qr"}})
	requireError(t, status, out, http.StatusNotImplemented, "SB_UNSUPPORTED")
	status, out = h.as(alice, call{method: http.MethodPost, path: "logout/whatsapp"})
	requireError(t, status, out, http.StatusNotImplemented, "SB_UNSUPPORTED")
	status, out = h.as(alice, call{method: http.MethodGet, path: "login/whatsapp/nope"})
	requireError(t, status, out, http.StatusNotFound, "SB_NOT_FOUND")
}

// Malformed requests get 400 SB_BAD_JSON, oversized ones 413, unknown
// paths 404 and wrong methods 405 — all JSON, none echoing the input.
func TestMalformedRequests(t *testing.T) {
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{noWhatsApp: true})
	for _, body := range []string{`{`, `[]`, `"+14155550100"`, `{"phone": 14155550100}`, `{"phone": "+14155550100", "extra": 1}`, `{} {}`, "\x00\xff"} {
		status, out := h.as(alice, call{method: http.MethodPost, path: "start", body: body})
		requireError(t, status, out, http.StatusBadRequest, "SB_BAD_JSON")
	}
	status, out := h.as(alice, call{method: http.MethodPost, path: "link", body: `{"phone": "` + strings.Repeat("1", 70<<10) + `"}`})
	requireError(t, status, out, http.StatusRequestEntityTooLarge, "SB_TOO_LARGE")
	status, out = h.as(alice, call{method: http.MethodGet, path: "nothing/here"})
	requireError(t, status, out, http.StatusNotFound, "SB_NOT_FOUND")
	status, out = h.as(alice, call{method: http.MethodDelete, path: "whoami"})
	requireError(t, status, out, http.StatusMethodNotAllowed, "SB_METHOD_NOT_ALLOWED")
	h.requireNoNumbers()
}

func itoa(n int) string { return strconv.Itoa(n) }
