package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

const (
	e2eSID      = "AC0123456789abcdef0123456789abcdef"
	e2eToken    = "fedcba9876543210fedcba9876543210"
	e2ePool     = "+14155550100"
	e2eContact  = "+14155550123"
	contactNoPl = "4155550123" // the contact's digits, which must never show on Matrix
)

// fakeTwilio records the Messages API calls the bridge makes.
type fakeTwilio struct {
	mu    sync.Mutex
	posts []url.Values
	at    map[string]time.Time // Body -> when it arrived
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+e2eSID+"/Messages.json" {
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != e2eSID || pass != e2eToken {
		http.Error(w, `{"code":20003,"message":"auth","status":401}`, http.StatusUnauthorized)
		return
	}
	_ = r.ParseForm()
	f.mu.Lock()
	f.posts = append(f.posts, r.PostForm)
	if f.at == nil {
		f.at = make(map[string]time.Time)
	}
	f.at[r.PostForm.Get("Body")] = time.Now()
	n := len(f.posts)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": fmt.Sprintf("SM%032d", n), "status": "queued",
		"to": r.PostForm.Get("To"), "from": r.PostForm.Get("From"), "num_segments": "1", "account_sid": e2eSID,
	})
}

// sentSID is the MessageSid the fake gave the i-th message.
func sentSID(_ *fakeTwilio, i int) string {
	return fmt.Sprintf("SM%032d", i+1)
}

func (f *fakeTwilio) sent() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

// twilioSign computes X-Twilio-Signature and checks it with twilio-go's
// own validator.
func twilioSign(t *testing.T, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	params := map[string]string{}
	for k := range form {
		keys = append(keys, k)
		params[k] = form.Get(k)
	}
	sort.Strings(keys)
	data := fullURL
	for _, k := range keys {
		data += k + form.Get(k)
	}
	mac := hmac.New(sha1.New, []byte(e2eToken))
	mac.Write([]byte(data))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	v := client.NewRequestValidator(e2eToken)
	require.True(t, v.Validate(fullURL, params, sig))
	return sig
}

type roomEvent struct {
	EventID  string         `json:"event_id"`
	Sender   string         `json:"sender"`
	Type     string         `json:"type"`
	StateKey *string        `json:"state_key"`
	OriginTS int64          `json:"origin_server_ts"`
	Content  map[string]any `json:"content"`
}

func messages(t *testing.T, hs *dendrite.Server, token, room string) []roomEvent {
	var msgs struct {
		Chunk []roomEvent `json:"chunk"`
	}
	hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=50", token, nil, &msgs)
	return msgs.Chunk
}

// waitBotNotice waits for a notice from sender in room whose body contains want.
func waitNotice(t *testing.T, hs *dendrite.Server, token, room, sender, want string) string {
	var body string
	require.Eventually(t, func() bool {
		for _, ev := range messages(t, hs, token, room) {
			b, _ := ev.Content["body"].(string)
			if ev.Sender == sender && ev.Type == "m.room.message" && strings.Contains(b, want) {
				body = b
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no notice containing %q", want)
	return body
}

// TestSMSEndToEnd: a Matrix user opts in to SMS, starts a chat with a
// number, and messages cross to a local fake Twilio and back, with the
// number never visible on Matrix.
// smsDaemon is the daemon binary running with SMS enabled against a real
// Dendrite and a local fake Twilio, with alice's SMS portal started.
type smsDaemon struct {
	fake                    *fakeTwilio
	hs                      *dendrite.Server
	dir, listen, token, bot string
	dm, portal              string
	proc                    *exec.Cmd
	logs                    *bytes.Buffer
	stop                    func()
	say                     func(room, txn, body string)
	// restart stops the daemon (SIGTERM) and starts it again on the same
	// config and database.
	restart func()
}

// hsToken reads the hs_token the daemon generated into its config, to push
// transactions to it as the homeserver does.
func (d *smsDaemon) hsToken(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(d.dir, "config.yaml"))
	require.NoError(t, err)
	var cfg struct {
		Appservice struct {
			HSToken string `yaml:"hs_token"`
		} `yaml:"appservice"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	return cfg.Appservice.HSToken
}

// smsEnv is the environment of a daemon listening on listen with SMS on,
// sending through the fake Twilio at apiURL from the test pool.
func smsEnv(listen, apiURL string) []string {
	return []string{
		"SWITCHBOARD_APPSERVICE_LISTEN=" + listen,
		"SWITCHBOARD_APPSERVICE_ADDRESS=http://" + listen,
		"SWITCHBOARD_SMS_ENABLED=true",
		"SWITCHBOARD_SMS_PUBLIC_URL=http://" + listen,
		"SWITCHBOARD_SMS_TWILIO_ACCOUNT_SID=" + e2eSID,
		"SWITCHBOARD_SMS_TWILIO_AUTH_TOKEN=" + e2eToken,
		"SWITCHBOARD_SMS_TWILIO_API_URL=" + apiURL,
		"SWITCHBOARD_SMS_TWILIO_NUMBERS=" + e2ePool,
	}
}

// startSMSDaemon sets up what TestSMSEndToEnd checks step by step: the
// refusal before `sms on`, the opt-in, and `start`.
func startSMSDaemon(t *testing.T, logLevel string) *smsDaemon {
	fake := &fakeTwilio{}
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)

	dir := t.TempDir()
	listen := freePort(t)
	env := append(smsEnv(listen, api.URL), "SWITCHBOARD_LOGGING_LEVEL="+logLevel)
	hs, env := withHomeserver(t, dir, env, dendrite.Options{LogLevel: "warn"})
	c := cmd(dir, env)
	var logs bytes.Buffer
	c.Stdout, c.Stderr = &logs, &logs
	require.NoError(t, c.Start())
	d := &smsDaemon{fake: fake, hs: hs, dir: dir, listen: listen, proc: c, logs: &logs}
	stopped := false
	d.stop = func() {
		if !stopped {
			stopped = true
			_ = d.proc.Process.Signal(syscall.SIGTERM)
			_ = d.proc.Wait()
		}
	}
	d.restart = func() {
		d.stop()
		d.proc = cmd(dir, env)
		d.proc.Stdout, d.proc.Stderr = &logs, &logs
		require.NoError(t, d.proc.Start())
		stopped = false
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("switchboard output:\n%s", logs.String())
		}
	})

	_, d.token = hs.RegisterUser(t, "alice", "correct horse battery")
	token := d.token
	d.bot = "@switchboard:" + hs.ServerName
	bot := d.bot
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", token,
		map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	d.dm = created.RoomID
	dm := d.dm
	d.say = func(room, txn, body string) {
		require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPut,
			"/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/"+txn, token,
			map[string]any{"msgtype": "m.text", "body": body}, nil))
	}
	say := d.say
	waitNotice(t, hs, token, dm, bot, "help") // the bot joined and greeted

	// Without `sms on`, SMS is refused with the reason.
	say(dm, "t1", "start "+e2eContact)
	waitNotice(t, hs, token, dm, bot, "sms on")
	require.Empty(t, fake.sent())

	say(dm, "t2", "sms on")
	waitNotice(t, hs, token, dm, bot, "not end-to-end encrypted")
	say(dm, "t3", "start "+e2eContact)
	answer := waitNotice(t, hs, token, dm, bot, "carried by sms")
	require.Contains(t, answer, "not end-to-end encrypted")
	require.Contains(t, answer, "sms cannot delete messages", "the undeletable leg is disclosed before messages flow")
	portal := regexp.MustCompile(`!([^/?#\s]+)`).FindString(strings.ReplaceAll(answer, "%21", "!"))
	portal, _ = url.PathUnescape(strings.TrimRight(portal, ".:"))
	require.NotEmpty(t, portal, "no room in %q", answer)
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(portal), token, map[string]any{}, nil))
	d.portal = portal
	return d
}

func TestSMSEndToEnd(t *testing.T) {
	d := startSMSDaemon(t, "debug")
	fake, hs, listen, token, bot, dm, portal, logs, dir := d.fake, d.hs, d.listen, d.token, d.bot, d.dm, d.portal, d.logs, d.dir
	say, stop := d.say, d.stop

	// Matrix → SMS: the fake Twilio gets the right To, From and Body.
	say(portal, "m1", "hello from matrix")
	require.Eventually(t, func() bool { return len(fake.sent()) == 1 }, 20*time.Second, 50*time.Millisecond, "no SMS sent")
	sent := fake.sent()[0]
	require.Equal(t, e2eContact, sent.Get("To"))
	require.Equal(t, e2ePool, sent.Get("From"))
	require.Equal(t, "hello from matrix", sent.Get("Body"))
	require.Equal(t, "http://"+listen+"/sms/twilio/status", sent.Get("StatusCallback"))

	// SMS → Matrix: a signed webhook reaches the portal from a ghost.
	form := url.Values{
		"AccountSid": {e2eSID}, "MessageSid": {"SM" + strings.Repeat("a", 32)},
		"From": {e2eContact}, "To": {e2ePool}, "Body": {"hi from sms"}, "NumMedia": {"0"},
	}
	incoming := "http://" + listen + "/sms/twilio/incoming"
	post := func(sig string) int {
		req, err := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusForbidden, post(""), "unsigned webhook")
	require.Equal(t, http.StatusForbidden, post("Zm9yZ2Vk"), "forged webhook")
	require.Equal(t, http.StatusOK, post(twilioSign(t, incoming, form)))
	require.Equal(t, http.StatusOK, post(twilioSign(t, incoming, form)), "a redelivery is accepted and dropped")
	var ghost string
	require.Eventually(t, func() bool {
		n := 0
		for _, ev := range messages(t, hs, token, portal) {
			if b, _ := ev.Content["body"].(string); b == "hi from sms" && ev.Sender != bot {
				ghost = ev.Sender
				n++
			}
		}
		return n == 1
	}, 20*time.Second, 100*time.Millisecond, "inbound SMS not in the portal exactly once")
	require.Regexp(t, `^@sb_[a-z2-7]+:`, ghost)

	// The carrier later reports the SMS undelivered: the sender sees it.
	status := url.Values{
		"AccountSid": {e2eSID}, "MessageSid": {sentSID(fake, 0)}, "MessageStatus": {"undelivered"},
		"ErrorCode": {"30003"}, "From": {e2ePool}, "To": {e2eContact},
	}
	statusURL := "http://" + listen + "/sms/twilio/status"
	req, err := http.NewRequest(http.MethodPost, statusURL, strings.NewReader(status.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilioSign(t, statusURL, status))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	notice := waitNotice(t, hs, token, portal, bot, "30003")
	require.Contains(t, strings.ToLower(notice), "not delivered")

	// Retention: SMS requires it (720h by default), so "off" is refused
	// naming SMS; a shorter timer is accepted and SMS's inability to
	// delete is disclosed.
	say(portal, "r1", "!sb retention off")
	refused := waitNotice(t, hs, token, portal, bot, "Could not change retention")
	require.Contains(t, refused, "sms")
	say(portal, "r2", "!sb retention 30s")
	set := waitNotice(t, hs, token, portal, bot, "30s (conversation setting)")
	require.Contains(t, set, "sms cannot delete")
	// A timer a Matrix user sets on the room counts too (strictest wins).
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPut,
		"/_matrix/client/v3/rooms/"+url.PathEscape(portal)+"/state/com.beeper.disappearing_timer/", token,
		map[string]any{"type": "after_send", "timer": 10000}, nil))
	// The homeserver pushes the state to the bridge asynchronously: ask
	// until the answer reflects it.
	attempt := 0
	require.Eventually(t, func() bool {
		attempt++
		say(portal, fmt.Sprintf("r3-%d", attempt), "!sb retention default")
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			for _, ev := range messages(t, hs, token, portal) {
				if b, _ := ev.Content["body"].(string); ev.Sender == bot && strings.Contains(b, "10s (chat timer on matrix)") {
					return true
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the room timer was not applied")

	// Nothing visible on Matrix carries the number: ghost ID, profile,
	// room state, any event.
	var state []roomEvent
	hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(portal)+"/state", token, nil, &state)
	var profile map[string]any
	hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(ghost), token, nil, &profile)
	// Alice typed the number in her DM with the bot; everything else is
	// the bridge's doing.
	var botSaid []roomEvent
	for _, ev := range messages(t, hs, token, dm) {
		if ev.Sender != idOfAlice(hs) {
			botSaid = append(botSaid, ev)
		}
	}
	visible, err := json.Marshal([]any{state, profile, messages(t, hs, token, portal), botSaid, ghost})
	require.NoError(t, err)
	require.NotContains(t, string(visible), contactNoPl)

	// Nor do the logs or, once stopped, the database files.
	stop()
	require.NotContains(t, logs.String(), contactNoPl)
	require.NotContains(t, logs.String(), "hi from sms")
	requireNotInDBFiles(t, dir, contactNoPl, "hi from sms", "hello from matrix")
}

// requireNotInDBFiles checks that none of needles is in the raw bytes of
// the SQLite database files in dir (-wal and -shm included).
func requireNotInDBFiles(t *testing.T, dir string, needles ...string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "switchboard.db*"))
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, n := range needles {
			require.False(t, bytes.Contains(data, []byte(n)), "%q in %s", n, f)
		}
	}
}

func idOfAlice(hs *dendrite.Server) string { return "@alice:" + hs.ServerName }

// TestSMSStrangerEndToEnd: someone texting the pool number whom no
// conversation uses it with gets an automatic reply in the webhook's
// answer (once in the hour), the admin room a flag with their pseudonym
// and never their number or words, and nothing reaches a room.
func TestSMSStrangerEndToEnd(t *testing.T) {
	const stranger, strangerDigits = "+14155550177", "4155550177"
	d := startSMSDaemon(t, "debug")
	modToken, adminRoom := makeAdminRoom(t, d)
	reconfigure(t, d, map[string]string{"admin_room": `"` + adminRoom + `"`})

	incoming := "http://" + d.listen + "/sms/twilio/incoming"
	post := func(n int, body string) string {
		form := url.Values{
			"AccountSid": {e2eSID}, "MessageSid": {fmt.Sprintf("SM%032x", 0x5700+n)},
			"From": {stranger}, "To": {e2ePool}, "Body": {body}, "NumMedia": {"0"},
		}
		var reply []byte
		require.Eventually(t, func() bool { // the daemon restarted: wait for its listener
			req, err := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", twilioSign(t, incoming, form))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			reply = buf.Bytes()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", reply)
			return true
		}, 20*time.Second, 100*time.Millisecond)
		return string(reply)
	}
	first := post(1, "who is this? canary-stranger-e2e")
	require.Contains(t, first, "<Message>")
	require.Contains(t, first, "was not delivered, and it was not kept")
	require.NotContains(t, post(2, "hello?? canary-stranger-e2e"), "<Message>", "at most once an hour")

	flag := waitNotice(t, d.hs, modToken, adminRoom, d.bot, "no conversation uses that number")
	require.Regexp(t, `Contact [a-z2-7]{6}`, flag)
	require.NotContains(t, flag, strangerDigits)
	require.NotContains(t, flag, "canary-stranger")
	for _, ev := range messages(t, d.hs, d.token, d.portal) {
		b, _ := ev.Content["body"].(string)
		require.NotContains(t, b, "canary-stranger", "nothing reached the portal")
	}
	d.stop()
	require.NotContains(t, d.logs.String(), strangerDigits)
	require.NotContains(t, d.logs.String(), "canary-stranger")
	requireNotInDBFiles(t, d.dir, strangerDigits, "canary-stranger")
}
