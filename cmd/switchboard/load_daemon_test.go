package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

// loadDaemon is the daemon binary under measurement, run as a separate
// process against a real Dendrite and the TLS fake Twilio, with one Matrix
// user (alice) and her SMS portals.
type loadDaemon struct {
	bin, dir, listen, hsToken string
	hs                        *dendrite.Server
	proc                      *exec.Cmd
	twilio                    *loadTwilio
	alice, token, bot, dm     string
	// portals are the rooms of the SMS chats with loadContact(0…).
	portals []string
	// pprof is set when profiles are wanted (appservice.pprof on).
	pprof   *pprofClient
	logPath string
	// proxy sits between Dendrite and the daemon (latency split).
	proxy *txnProxy
}

// loadContact is the i-th SMS contact's number (+14155550200 on).
func loadContact(i int) string { return fmt.Sprintf("+1415555%04d", 200+i) }

// loadCmd runs bin in dir with a clean SWITCHBOARD_ environment plus env.
// ctx bounds it.
func loadCmd(ctx context.Context, bin, dir string, env []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, bin, args...)
	c.Cancel = func() error { return c.Process.Kill() }
	c.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") && !strings.HasPrefix(kv, "SSL_CERT_") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, env...)
	return c
}

// loadSettings are the knobs of one daemon setup.
type loadSettings struct {
	bin      string
	db       database.Options
	logLevel string
	http2    bool
	profile  bool
	// plain serves the fake Twilio over HTTP instead of TLS.
	plain bool
	// concurrency is how many transactions are pushed at once (1 as a
	// homeserver does).
	concurrency int
	// latency runs the latency measurement through Dendrite.
	latency bool
	rows    []loadRow
}

// startLoadDaemon writes the config with `<bin> -g`, starts Dendrite with
// the registration and the daemon with SMS pacing and every rate limit off
// (the peer has none), and waits until its /health answers.
func startLoadDaemon(t *testing.T, s loadSettings) *loadDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &loadDaemon{bin: s.bin, dir: dir, listen: freePort(t), twilio: newLoadTwilio(), logPath: filepath.Join(dir, "switchboard.log")}
	var api, ca string
	if s.plain {
		srv := httptest.NewServer(d.twilio)
		t.Cleanup(srv.Close)
		api = srv.URL
	} else {
		api, ca = startLoadTwilio(t, d.twilio, dir, s.http2)
	}
	env := append(smsEnv(d.listen, api),
		"SSL_CERT_FILE="+ca,
		"SWITCHBOARD_DATABASE_TYPE="+s.db.Type,
		"SWITCHBOARD_DATABASE_URI="+s.db.URI,
		"SWITCHBOARD_SAFETY_NEW_CHATS_PER_HOUR=0",
		"SWITCHBOARD_SAFETY_SENDER_MESSAGES_PER_MINUTE=0",
		"SWITCHBOARD_SAFETY_CONVERSATION_MESSAGES_PER_MINUTE=0",
		"SWITCHBOARD_SAFETY_INBOUND_MESSAGES_PER_MINUTE=0",
		"SWITCHBOARD_SAFETY_SMS_SEGMENT_INTERVAL=0",
		"SWITCHBOARD_SAFETY_SUSPEND_SCORE=0",
		"SWITCHBOARD_LOGGING_LEVEL="+s.logLevel,
		"SWITCHBOARD_LOGGING_FORMAT=json",
	)
	if os.Getenv("SWITCHBOARD_LOAD_STATUS_EVENTS") == "0" {
		// The peer sends no message status events by default; each is one
		// more event the homeserver stores and pushes back.
		env = append(env, "SWITCHBOARD_APPSERVICE_MESSAGE_STATUS_EVENTS=false")
	}
	if s.profile {
		// Only then: an older build without the key refuses it.
		env = append(env, "SWITCHBOARD_APPSERVICE_PPROF=true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out, err := loadCmd(ctx, s.bin, dir, env, "-g").CombinedOutput()
	require.NoError(t, err, "%s -g: %s", s.bin, out)
	d.proxy = startTxnProxy(t, d.listen)
	d.proxy.pointRegistration(t, filepath.Join(dir, "registration.yaml"))
	d.hs = dendrite.Start(t, dendrite.Options{LogLevel: "warn", Registrations: []string{filepath.Join(dir, "registration.yaml")}})
	env = append(env, "SWITCHBOARD_HOMESERVER_ADDRESS="+d.hs.URL, "SWITCHBOARD_HOMESERVER_DOMAIN="+d.hs.ServerName)

	logFile, err := os.Create(d.logPath)
	require.NoError(t, err)
	d.proc = loadCmd(ctx, s.bin, dir, env)
	d.proc.Stdout, d.proc.Stderr = logFile, logFile
	require.NoError(t, d.proc.Start())
	t.Cleanup(func() {
		_ = d.proc.Process.Signal(syscall.SIGTERM)
		_ = d.proc.Wait()
		_ = logFile.Close()
		if keep := os.Getenv("SWITCHBOARD_LOAD_KEEP_LOG"); keep != "" {
			if data, err := os.ReadFile(d.logPath); err == nil {
				_ = os.WriteFile(keep, data, 0o600)
			}
		}
		if t.Failed() {
			if data, err := os.ReadFile(d.logPath); err == nil {
				t.Logf("switchboard output (last 8 KB):\n%s", data[max(0, len(data)-8192):])
			}
		}
	})
	d.hsToken = (&smsDaemon{dir: dir}).hsToken(t)
	if s.profile {
		d.pprof = &pprofClient{base: "http://" + d.listen, token: d.hsToken}
	}
	require.Eventually(t, func() bool { _, ok := d.queueDepth(); return ok }, time.Minute, 50*time.Millisecond, "no /health from the daemon")
	return d
}

// queueDepth reads the queue depth from the daemon's /health.
func (d *loadDaemon) queueDepth() (int, bool) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.listen+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+d.hsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var rep struct {
		QueueDepth *int `json:"queue_depth"`
	}
	if json.NewDecoder(resp.Body).Decode(&rep) != nil || rep.QueueDepth == nil {
		return 0, false
	}
	return *rep.QueueDepth, true
}

// settle waits until the daemon's queue is empty (deliveries completed),
// checking every 100 ms for at most a minute.
func (d *loadDaemon) settle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { n, ok := d.queueDepth(); return ok && n == 0 }, time.Minute, 100*time.Millisecond, "queue not empty")
}

// setUp registers alice, opens her DM with the bot, opts in to SMS and
// starts an SMS chat with each of n contacts, joining every portal.
func (d *loadDaemon) setUp(t *testing.T, n int) {
	t.Helper()
	hs := d.hs
	d.alice, d.token = hs.RegisterUser(t, "alice", "correct horse battery")
	d.bot = "@switchboard:" + hs.ServerName
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", d.token,
		map[string]any{"invite": []string{d.bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created))
	d.dm = created.RoomID
	waitNotice(t, hs, d.token, d.dm, d.bot, "help")
	d.say(t, d.dm, "sms-on", "sms on")
	waitNotice(t, hs, d.token, d.dm, d.bot, "not end-to-end encrypted")
	// One command at a time: the bot answers a transaction's commands in
	// turn, and a transaction of many starts outlasts the homeserver's
	// timeout. Which portal belongs to which contact does not matter to
	// the tool (the fake Twilio checks order per number).
	roomRE := regexp.MustCompile(`!([^/?#\s]+)`)
	known := map[string]bool{}
	for i := 0; i < n; i++ {
		d.say(t, d.dm, fmt.Sprintf("start-%d", i), "start "+loadContact(i))
		require.Eventually(t, func() bool {
			var page struct {
				Chunk []roomEvent `json:"chunk"`
			}
			hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(d.dm)+"/messages?dir=b&limit=6", d.token, nil, &page)
			for _, ev := range page.Chunk {
				b, _ := ev.Content["body"].(string)
				if ev.Sender != d.bot || !strings.Contains(b, "carried by sms") {
					continue
				}
				room, _ := url.PathUnescape(strings.TrimRight(roomRE.FindString(strings.ReplaceAll(b, "%21", "!")), ".:"))
				if room != "" && !known[room] {
					known[room] = true
					d.portals = append(d.portals, room)
				}
			}
			return len(d.portals) > i
		}, time.Minute, 50*time.Millisecond, "no portal for contact %d", i)
	}
	for _, portal := range d.portals {
		require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(portal), d.token, map[string]any{}, nil))
	}
}

// say sends body to room as alice through the homeserver's client API.
func (d *loadDaemon) say(t *testing.T, room, txn, body string) {
	t.Helper()
	require.Equal(t, http.StatusOK, d.hs.DoJSON(t, http.MethodPut,
		"/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/"+txn, d.token,
		map[string]any{"msgtype": "m.text", "body": body}, nil))
}
