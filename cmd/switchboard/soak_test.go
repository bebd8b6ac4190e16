package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoak is the bounded soak of issue 12: for SWITCHBOARD_SOAK (a
// duration; "1" means 10m) it runs the daemon binary against a real
// Dendrite and the fake Twilio, with normal traffic in both directions,
// hostile traffic beside it, and a kill -9 of the daemon every 60–90 s
// (restarted 1–3 s later on the same directory, database and ports). Then
// it stops sending, lets the queues drain and counts every normal message
// at its destination: none may be lost or duplicated.
//
//	SWITCHBOARD_SOAK=10m go test -tags goolm -run Soak -v -timeout 30m ./cmd/switchboard
//
// Normal traffic, numbered so loss and duplication can be counted:
//   - Matrix → SMS: alice sends "soak-m-<n>" in her SMS portal through
//     Dendrite's client API, so it reaches the daemon in real appservice
//     transactions, which Dendrite retries by itself while the daemon is
//     down. The fake Twilio counts each body it receives.
//   - SMS → Matrix: the contact sends "soak-s-<n>" as a signed webhook with
//     a unique MessageSid. On a connection error or a non-2xx answer the
//     same webhook (same MessageSid) is sent again until accepted: that is
//     Twilio's retry when the webhook URL carries connection overrides
//     (#rc=…&rt=… retries on connection failures and timeouts) or a
//     fallback URL; without them Twilio does not retry, and a webhook sent
//     while the daemon process is down is lost whatever the bridge does.
//     Some accepted webhooks are sent again later (same MessageSid), as a
//     redelivery, which must be dropped. Messages are counted by reading
//     the portal with /messages.
//
// Hostile traffic, a few requests per second, loopback only: a stranger's
// room with the bot (the default "*": relay lets anyone invite it) gets
// negative com.beeper.disappearing_timer state, m.room.encrypted events
// with sessions nobody has and malformed contents; transactions with a
// null event, junk events, or a wrong token are pushed straight to the
// appservice endpoint; forged webhooks (bad signature), oversized ones,
// raw garbage and slowly trickled requests hit the public listener.
//
// A kill -9 between Twilio accepting an SMS and the bridge recording its
// MessageSid sends that SMS again after the restart (Twilio has no
// idempotency key). Such a duplicate is counted apart, with the evidence
// (the first copy's MessageSid never recorded in the daemon's log, a kill
// right after the fake answered), and reported; every other duplicate
// fails the test.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak: %s, seed %d", dur, seed)

	d := startSMSDaemon(t, "debug")
	hsToken := d.hsToken(t)
	var err error

	// The stranger's room with the bot.
	malloryID, malloryToken := d.hs.RegisterUser(t, "mallory", "correct horse battery")
	var created struct {
		RoomID string `json:"room_id"`
	}
	require.Equal(t, http.StatusOK, d.hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", malloryToken,
		map[string]any{"invite": []string{d.bot}, "preset": "private_chat", "name": "not a portal"}, &created))
	evil := created.RoomID
	require.Eventually(t, func() bool {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		d.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(evil)+"/joined_members", malloryToken, nil, &members)
		_, ok := members.Joined[d.bot]
		return ok
	}, 30*time.Second, 200*time.Millisecond, "the bot never joined the stranger's room")

	// Hand the daemon over to a process this test may kill -9 and start
	// again with no time limit (cmd's processes are killed after two
	// minutes), logging to a file across restarts.
	sd := newSoakDaemon(t, d)
	sd.waitHealthy(t, 60*time.Second)

	s := &soak{
		t: t, d: d, sd: sd, hsToken: hsToken, evil: evil, mallory: malloryID, malloryToken: malloryToken,
		client:  &http.Client{Timeout: 30 * time.Second},
		hostile: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
		start:   time.Now(),
		outcome: map[string]map[string]int{},
		sSeen:   map[int]time.Time{},
	}
	s.deadline = s.start.Add(dur)
	// Everything stops by itself: senders at the deadline (a message
	// being retried gets until giveUp), hostile traffic at the deadline.
	s.giveUp = s.deadline.Add(2 * time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), s.deadline)
	defer cancel()

	var wg sync.WaitGroup
	run := func(k uint64, f func(ctx context.Context, rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx, rand.New(rand.NewPCG(seed, k)))
		}()
	}
	run(1, s.matrixSender)
	run(2, s.smsSender)
	run(3, s.strangerRoom)
	run(4, s.directTransactions)
	run(5, s.forgedWebhooks)
	run(6, s.garbage)
	run(7, s.slowClients)
	run(8, s.watchPortal)
	rssDone := make(chan struct{})
	go func() { defer close(rssDone); sd.sampleRSS(ctx) }()

	// kill -9 every 60–90 s (scaled down, not below 15 s, for a shorter
	// soak), restart after 1–3 s.
	rng := rand.New(rand.NewPCG(seed, 0))
	scale := min(1, float64(dur)/float64(10*time.Minute))
	for {
		every := time.Duration(float64(60*time.Second+jitter(rng, 30*time.Second)) * scale)
		every = max(every, 15*time.Second)
		next := time.Now().Add(every)
		if next.After(s.deadline) {
			sd.watch(t, time.Until(s.deadline))
			break
		}
		sd.watch(t, time.Until(next))
		s.mu.Lock()
		s.killPosts = append(s.killPosts, len(d.fake.sent()))
		s.mu.Unlock()
		sd.kill(t)
		time.Sleep(time.Second + jitter(rng, 2*time.Second))
		sd.start(t)
	}
	wg.Wait()
	<-rssDone
	sent := time.Now()
	t.Logf("soak: traffic stopped after %s; draining", sent.Sub(s.start).Round(time.Second))

	// Drain: wait (bounded) until every message arrived at least once, then
	// a little longer for late copies, and count.
	var m, sm tally
	var portal portalCount
	drained := false
	for time.Since(sent) < 3*time.Minute {
		sd.watch(t, 3*time.Second)
		m = s.countMatrixToSMS()
		if portal, err = s.readPortal(); err != nil {
			continue
		}
		sm = s.countSMSToMatrix(portal)
		if m.lost == 0 && sm.lost == 0 {
			drained = true
			break
		}
	}
	if drained {
		t.Logf("soak: drained %s after traffic stopped; waiting 15s for late copies", time.Since(sent).Round(time.Second))
		sd.watch(t, 15*time.Second)
	}
	m = s.countMatrixToSMS()
	portal, err = s.readPortal()
	require.NoError(t, err)
	sm = s.countSMSToMatrix(portal)
	sd.stop(t)

	// Duplicated SMS: is it the kill -9 window between Twilio's answer and
	// the bridge recording the MessageSid?
	window, other := s.classifyDuplicates(m)

	t.Logf("soak figures (%s of traffic, seed %d):", s.deadline.Sub(s.start).Round(time.Second), seed)
	t.Logf("  Matrix→SMS: sent %d, delivered %d, lost %d, duplicated %d (kill-window %d, other %d); latency p50 %s p99 %s max %s",
		m.sent, m.delivered, m.lost, m.duplicated, len(window), len(other), m.p(50), m.p(99), m.p(100))
	t.Logf("  SMS→Matrix: sent %d (webhook retries until accepted %d, redeliveries of accepted webhooks %d), delivered %d, lost %d, duplicated %d; latency (portal polled every 2s) p50 %s p99 %s max %s",
		sm.sent, s.webhookRetries.Load(), s.replays.Load(), sm.delivered, sm.lost, sm.duplicated, sm.p(50), sm.p(99), sm.p(100))
	t.Logf("  kill -9: %d (at %s); unexpected exits %d; max RSS %.1f MB",
		len(sd.kills), sd.killOffsets(s.start), len(sd.unexpected), sd.maxRSS())
	t.Logf("  hostile requests sent: %d", s.hostileTotal())
	for _, line := range s.hostileSummary() {
		t.Logf("    %s", line)
	}
	t.Logf("  slowest trickled request the daemon kept open: %s (a new connection per trickle, at most 3 at once)", time.Duration(s.slowMax.Load()).Round(time.Second))
	t.Logf("  bot notices in the portal: %d %v; forged webhook bodies in the portal: %d", len(portal.notices), portal.noticeKinds(), portal.forged)
	for _, w := range window {
		t.Logf("  duplicate SMS in the kill -9 window: %s", w)
	}
	for _, o := range other {
		t.Logf("  duplicate SMS NOT explained by a kill: %s", o)
	}
	if len(m.lostIDs) > 0 || len(sm.lostIDs) > 0 {
		t.Logf("  lost: Matrix→SMS %v; SMS→Matrix %v", m.lostIDs, sm.lostIDs)
	}
	if len(sm.dupIDs) > 0 {
		t.Logf("  duplicated in Matrix: %v", sm.dupIDs)
	}
	t.Logf("  Dendrite: %s", dendriteBackoffs(d.hs.Log()))
	kept := filepath.Join(os.TempDir(), fmt.Sprintf("switchboard-soak-%s.log", s.start.Format("20060102-150405")))
	if data, err := os.ReadFile(sd.logPath); err == nil && os.WriteFile(kept, data, 0o600) == nil {
		t.Logf("  daemon log (debug): %s, %s", kept, sd.logSize())
	}
	for _, line := range summarizeLog(sd.logPath) {
		t.Logf("    %s", line)
	}

	assert.Empty(t, sd.unexpected, "the daemon exited by itself")
	assert.Zero(t, s.neverAccepted.Load(), "normal messages never accepted (Matrix send or webhook)")
	assert.Zero(t, m.lost, "Matrix→SMS lost")
	assert.Empty(t, other, "Matrix→SMS duplicates not explained by the kill -9 window")
	assert.Zero(t, sm.lost, "SMS→Matrix lost")
	assert.Zero(t, sm.duplicated, "SMS→Matrix duplicated")
	assert.Zero(t, portal.forged, "a forged webhook reached the portal")
	assert.NotZero(t, m.sent)
	// Debug logs through every crash and hostile request still carry no
	// number and no message body.
	if logData, err := os.ReadFile(sd.logPath); assert.NoError(t, err) {
		for _, secret := range []string{contactNoPl, "soak-m-", "soak-s-", "soak-forged-"} {
			assert.NotContains(t, string(logData), secret, "in the daemon's log")
		}
	}
	assert.NotZero(t, sm.sent)
	if t.Failed() {
		t.Logf("daemon log tail:\n%s", sd.tail(200))
	}
}

// soakDuration reads SWITCHBOARD_SOAK or skips the test.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("SWITCHBOARD_SOAK")
	if v == "" {
		t.Skip("soak: set SWITCHBOARD_SOAK to a duration (e.g. 10m; 1 means 10m) to run it")
	}
	if v == "1" {
		return 10 * time.Minute
	}
	dur, err := time.ParseDuration(v)
	require.NoError(t, err, "SWITCHBOARD_SOAK")
	require.True(t, dur >= 30*time.Second && dur <= 2*time.Hour, "SWITCHBOARD_SOAK between 30s and 2h")
	return dur
}

// soakDaemon is the daemon process the soak kills and restarts.
type soakDaemon struct {
	path    string
	args    []string
	env     []string
	dir     string
	logPath string
	log     *os.File
	health  string

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd has exited
	expected   bool          // cmd is being stopped on purpose
	kills      []time.Time
	unexpected []string
	rss        float64
}

// newSoakDaemon stops the daemon startSMSDaemon started (SIGTERM) and
// starts it again on the same command line, directory and environment.
func newSoakDaemon(t *testing.T, d *smsDaemon) *soakDaemon {
	old := d.proc
	sd := &soakDaemon{
		path: old.Path, args: old.Args[1:], env: old.Env, dir: old.Dir,
		logPath: filepath.Join(d.dir, "soak-daemon.log"),
		health:  "http://" + d.listen + "/health",
	}
	d.stop()
	var err error
	sd.log, err = os.OpenFile(sd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() {
		sd.stop(t)
		_ = sd.log.Close()
	})
	sd.start(t)
	return sd
}

func (sd *soakDaemon) mark(what string) {
	_, _ = fmt.Fprintf(sd.log, "{\"soak\":%q,\"time\":%q}\n", what, time.Now().Format(time.RFC3339Nano))
}

func (sd *soakDaemon) start(t *testing.T) {
	c := exec.Command(sd.path, sd.args...)
	c.Dir, c.Env = sd.dir, sd.env
	c.Stdout, c.Stderr = sd.log, sd.log
	require.NoError(t, c.Start())
	sd.mark(fmt.Sprintf("started pid %d", c.Process.Pid))
	done := make(chan struct{})
	sd.mu.Lock()
	sd.cmd, sd.done, sd.expected = c, done, false
	sd.mu.Unlock()
	go func() {
		err := c.Wait()
		sd.mu.Lock()
		if !sd.expected {
			sd.unexpected = append(sd.unexpected, fmt.Sprintf("pid %d at %s: %v", c.Process.Pid, time.Now().Format(time.TimeOnly), err))
		}
		sd.mu.Unlock()
		close(done)
	}()
}

// signal stops the running process with sig and waits for it to exit (a
// SIGTERM that takes longer than 30 s is followed by SIGKILL).
func (sd *soakDaemon) signal(sig syscall.Signal) bool {
	sd.mu.Lock()
	c, done := sd.cmd, sd.done
	running := c != nil && !isClosed(done)
	if running {
		sd.expected = true
	}
	sd.mu.Unlock()
	if !running {
		return false
	}
	_ = c.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
	return true
}

func (sd *soakDaemon) kill(t *testing.T) {
	sd.mark("kill -9")
	if sd.signal(syscall.SIGKILL) {
		sd.mu.Lock()
		sd.kills = append(sd.kills, time.Now())
		sd.mu.Unlock()
	}
}

func (sd *soakDaemon) stop(t *testing.T) {
	sd.signal(syscall.SIGTERM)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// watch waits for dur, restarting the daemon if it exits by itself (which
// is recorded as a failure).
func (sd *soakDaemon) watch(t *testing.T, dur time.Duration) {
	end := time.Now().Add(dur)
	for {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		sd.mu.Lock()
		done := sd.done
		sd.mu.Unlock()
		select {
		case <-time.After(left):
			return
		case <-done:
			sd.mark("exited by itself; restarting")
			time.Sleep(time.Second)
			sd.start(t)
		}
	}
}

func (sd *soakDaemon) waitHealthy(t *testing.T, within time.Duration) {
	require.Eventually(t, func() bool {
		resp, err := http.Get(sd.health)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, within, 100*time.Millisecond, "the daemon did not answer /health")
}

func (sd *soakDaemon) sampleRSS(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		sd.mu.Lock()
		c := sd.cmd
		sd.mu.Unlock()
		if c != nil {
			if mb, ok := procRSS(c.Process.Pid); ok {
				sd.mu.Lock()
				sd.rss = max(sd.rss, mb)
				sd.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (sd *soakDaemon) maxRSS() float64 {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.rss
}

func (sd *soakDaemon) killOffsets(start time.Time) string {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	var out []string
	for _, k := range sd.kills {
		out = append(out, k.Sub(start).Round(time.Second).String())
	}
	return strings.Join(out, " ")
}

func (sd *soakDaemon) logSize() string {
	info, err := os.Stat(sd.logPath)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%.1f MB", float64(info.Size())/1e6)
}

func (sd *soakDaemon) tail(n int) string {
	data, _ := os.ReadFile(sd.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// procRSS is a process's resident set in MB, if it still runs.
func procRSS(pid int) (float64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024, true
		}
	}
	return 0, false
}

// soak is the traffic and its records.
type soak struct {
	t               *testing.T
	d               *smsDaemon
	sd              *soakDaemon
	hsToken         string
	evil, mallory   string
	malloryToken    string
	client, hostile *http.Client
	start, deadline time.Time
	giveUp          time.Time
	webhookRetries  atomic.Int64
	replays         atomic.Int64
	neverAccepted   atomic.Int64
	slowMax         atomic.Int64 // nanoseconds
	mu              sync.Mutex
	mSent           []time.Time // soak-m-<n+1>: when Dendrite accepted it
	sSent           []time.Time // soak-s-<n+1>: when the webhook was accepted
	outcome         map[string]map[string]int
	killPosts       []int             // how many posts the fake Twilio had had at each kill
	sSeen           map[int]time.Time // soak-s-<n>: when the test first saw it in the portal
}

// hsDo is DoJSON without failing the test: it may run in any goroutine.
func (s *soak) hsDo(method, path, token string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.d.hs.URL+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(data, out)
	}
	return resp.StatusCode, err
}

// pause waits for dur or until ctx ends, and reports whether to go on.
func pause(ctx context.Context, dur time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(dur):
		return true
	}
}

// matrixSender: alice says soak-m-<n> in her SMS portal every 3–5 s.
func (s *soak) matrixSender(ctx context.Context, rng *rand.Rand) {
	for n := 1; ctx.Err() == nil; n++ {
		body := fmt.Sprintf("soak-m-%d", n)
		for {
			// The same transaction ID on a retry: Dendrite makes one event.
			status, err := s.hsDo(http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(s.d.portal)+"/send/m.room.message/"+body,
				s.d.token, map[string]any{"msgtype": "m.text", "body": body}, nil)
			if err == nil && status == http.StatusOK {
				s.mu.Lock()
				s.mSent = append(s.mSent, time.Now())
				s.mu.Unlock()
				break
			}
			if time.Now().After(s.giveUp) {
				s.neverAccepted.Add(1)
				return
			}
			time.Sleep(time.Second)
		}
		if !pause(ctx, 3*time.Second+jitter(rng, 2*time.Second)) {
			return
		}
	}
}

// twilioSignature is X-Twilio-Signature for a form posted to fullURL (the
// same computation as twilioSign, without a *testing.T).
func twilioSignature(fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := fullURL
	for _, k := range keys {
		data += k + form.Get(k)
	}
	mac := hmac.New(sha1.New, []byte(e2eToken))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// postWebhook posts form to the daemon's inbound webhook with sig.
func (s *soak) postWebhook(client *http.Client, form url.Values, sig string) (int, error) {
	incoming := "http://" + s.d.listen + "/sms/twilio/incoming"
	req, err := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// smsSender: the contact texts soak-s-<n> every 4–6 s; a webhook is sent
// again (same MessageSid) until the daemon accepts it, and about one in
// four accepted webhooks is redelivered later.
func (s *soak) smsSender(ctx context.Context, rng *rand.Rand) {
	incoming := "http://" + s.d.listen + "/sms/twilio/incoming"
	var accepted []url.Values
	for n := 1; ctx.Err() == nil; n++ {
		form := url.Values{
			"AccountSid": {e2eSID}, "MessageSid": {fmt.Sprintf("SM50a4%028x", n)},
			"From": {e2eContact}, "To": {e2ePool}, "Body": {fmt.Sprintf("soak-s-%d", n)}, "NumMedia": {"0"},
		}
		sig := twilioSignature(incoming, form)
		for {
			status, err := s.postWebhook(s.client, form, sig)
			if err == nil && status/100 == 2 {
				s.mu.Lock()
				s.sSent = append(s.sSent, time.Now())
				s.mu.Unlock()
				accepted = append(accepted, form)
				break
			}
			if time.Now().After(s.giveUp) {
				s.neverAccepted.Add(1)
				return
			}
			s.webhookRetries.Add(1)
			time.Sleep(time.Second)
		}
		if len(accepted) > 1 && rng.IntN(4) == 0 {
			old := accepted[rng.IntN(len(accepted)-1)]
			if status, err := s.postWebhook(s.client, old, twilioSignature(incoming, old)); err == nil && status/100 == 2 {
				s.replays.Add(1)
			}
		}
		if !pause(ctx, 4*time.Second+jitter(rng, 2*time.Second)) {
			return
		}
	}
}

// record counts a hostile request of kind by its outcome.
func (s *soak) record(kind string, status int, err error) {
	outcome := "error"
	switch {
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			outcome = "timeout"
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			outcome = "refused (daemon down)"
		} else if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			outcome = "reset/eof (daemon killed?)"
		}
	default:
		outcome = strconv.Itoa(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcome[kind] == nil {
		s.outcome[kind] = map[string]int{}
	}
	s.outcome[kind][outcome]++
}

func (s *soak) hostileTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.outcome {
		for _, c := range o {
			n += c
		}
	}
	return n
}

func (s *soak) hostileSummary() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for kind, o := range s.outcome {
		var parts []string
		for k, c := range o {
			parts = append(parts, fmt.Sprintf("%s×%d", k, c))
		}
		sort.Strings(parts)
		out = append(out, kind+": "+strings.Join(parts, " "))
	}
	sort.Strings(out)
	return out
}

// strangerRoom: mallory's room with the bot gets a negative timer every
// 15 s, an undecryptable event every 2 s and a malformed content every 3 s
// (through Dendrite, so they reach the daemon in the same transactions as
// alice's messages).
func (s *soak) strangerRoom(ctx context.Context, rng *rand.Rand) {
	room := "/_matrix/client/v3/rooms/" + url.PathEscape(s.evil)
	malformed := []map[string]any{
		{"msgtype": "m.text", "body": 123},
		{"msgtype": "m.image", "body": "x.png", "info": map[string]any{"size": -1}},
		{"msgtype": "m.text", "body": "x", "com.beeper.disappearing_timer": map[string]any{"type": "after_send", "timer": -5}},
		{"msgtype": "m.text"},
		{"body": "no msgtype"},
		{"msgtype": "m.file", "url": "mxc://nowhere/" + strings.Repeat("a", 300), "body": "f"},
		{"msgtype": "m.text", "body": "help", "m.relates_to": "nonsense"},
		{"msgtype": "m.text", "body": "x", "m.new_content": 7, "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": "$nope"}},
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		txn := fmt.Sprintf("evil-%d", i)
		if i%15 == 0 {
			status, err := s.hsDo(http.MethodPut, room+"/state/com.beeper.disappearing_timer/", s.malloryToken,
				map[string]any{"type": "after_send", "timer": -1000 - rng.IntN(100000)}, nil)
			s.record("stranger room: negative disappearing timer", status, err)
		}
		if i%2 == 0 {
			status, err := s.hsDo(http.MethodPut, room+"/send/m.room.encrypted/"+txn, s.malloryToken, map[string]any{
				"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnB0ZXN0", "device_id": "EVILDEVICE",
				"sender_key": "c2VuZGVyIGtleSB0aGF0IGRvZXMgbm90IGV4aXN0", "session_id": fmt.Sprintf("no-such-session-%d", i)}, nil)
			s.record("stranger room: m.room.encrypted, unknown session", status, err)
		}
		if i%3 == 0 {
			status, err := s.hsDo(http.MethodPut, room+"/send/m.room.message/"+txn, s.malloryToken, malformed[rng.IntN(len(malformed))], nil)
			s.record("stranger room: malformed content", status, err)
		}
	}
}

// putTransaction pushes a transaction straight to the daemon's appservice
// endpoint.
func (s *soak) putTransaction(txn, token, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPut, "http://"+s.d.listen+"/_matrix/app/v1/transactions/"+txn, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.hostile.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// directTransactions: every 2 s a transaction as the homeserver (hs_token)
// with a null event or junk events, or one with a wrong token.
func (s *soak) directTransactions(ctx context.Context, rng *rand.Rand) {
	junk := []string{
		`{"events":[null]}`,
		`{"events":[null,null,{}]}`,
		`{"events":[{"type":123,"room_id":[],"sender":{}}]}`,
		`{"events":[{"type":"m.room.message","room_id":"!nowhere:localhost","sender":"@x:localhost","event_id":"$junk%d","content":"not an object"}]}`,
		`{"events":[{"type":"m.room.member","room_id":"!nowhere:localhost","sender":"@x:localhost","state_key":null,"event_id":"$junk%d","content":{"membership":7}}]}`,
		`{"events":{"not":"a list"}}`,
		`{"events":[` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `]}`,
		`not json at all`,
	}
	for i := 0; pause(ctx, 2*time.Second); i++ {
		txn := fmt.Sprintf("soak-hostile-%d-%d", time.Now().UnixNano(), i)
		if i%5 == 4 {
			status, err := s.putTransaction(txn, "wrong-token-0123456789abcdef0123456789abcdef", `{"events":[]}`)
			s.record("appservice: wrong hs_token", status, err)
			continue
		}
		body := junk[rng.IntN(len(junk))]
		if strings.Contains(body, "%d") {
			body = fmt.Sprintf(body, i)
		}
		status, err := s.putTransaction(txn, s.hsToken, body)
		kind := "appservice: junk events"
		if strings.Contains(body, "null") {
			kind = "appservice: null event"
		}
		s.record(kind, status, err)
	}
}

// forgedWebhooks: every 2 s a webhook with a bad signature (it must never
// reach the portal), and every 30 s one over the size limit.
func (s *soak) forgedWebhooks(ctx context.Context, rng *rand.Rand) {
	for i := 0; pause(ctx, 2*time.Second); i++ {
		form := url.Values{
			"AccountSid": {e2eSID}, "MessageSid": {fmt.Sprintf("SMf0f0%028x", i)},
			"From": {e2eContact}, "To": {e2ePool}, "Body": {fmt.Sprintf("soak-forged-%d", i)}, "NumMedia": {"0"},
		}
		if i%15 == 14 {
			form.Set("Body", strings.Repeat("x", 2<<20))
			status, err := s.postWebhook(s.hostile, form, twilioSignature("http://"+s.d.listen+"/sms/twilio/incoming", form))
			s.record("webhook: 2 MB body (signed)", status, err)
			continue
		}
		sig := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("forged-%d-%d", i, rng.Uint64())))
		status, err := s.postWebhook(s.hostile, form, sig)
		s.record("webhook: forged signature", status, err)
	}
}

// garbage: every 3 s a connection that sends random bytes (or a request
// line that is not HTTP) and reads whatever comes back.
func (s *soak) garbage(ctx context.Context, rng *rand.Rand) {
	for i := 0; pause(ctx, 3*time.Second); i++ {
		var payload []byte
		switch i % 3 {
		case 0:
			payload = make([]byte, 512+rng.IntN(2048))
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
		case 1:
			payload = []byte("GET /" + strings.Repeat("A", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
		default:
			payload = []byte("PUT /_matrix/app/v1/transactions/x HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n")
		}
		conn, err := net.DialTimeout("tcp", s.d.listen, 2*time.Second)
		if err != nil {
			s.record("raw garbage", 0, err)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write(payload)
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		status := 0
		if f := strings.Fields(line); len(f) >= 2 {
			status, _ = strconv.Atoi(f[1])
		} else if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("closed without an answer")
		}
		if status != 0 {
			err = nil
		}
		s.record("raw garbage", status, err)
	}
}

// slowClients keeps up to 3 connections trickling a request (the headers,
// or the body of a webhook) at 1 byte every 2 s, each for at most 60 s,
// and records how long the daemon kept them open.
func (s *soak) slowClients(ctx context.Context, rng *rand.Rand) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, 3)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.trickle(ctx, i%2 == 0)
		}()
		if !pause(ctx, time.Second+jitter(rng, 2*time.Second)) {
			return
		}
	}
}

func (s *soak) trickle(ctx context.Context, body bool) {
	kind := "slow: trickled headers"
	head := "GET /health HTTP/1.1\r\nHost: soak\r\n"
	if body {
		kind = "slow: trickled webhook body"
		head = "POST /sms/twilio/incoming HTTP/1.1\r\nHost: soak\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: x\r\nContent-Length: 100000\r\n\r\n"
	}
	conn, err := net.DialTimeout("tcp", s.d.listen, 2*time.Second)
	if err != nil {
		s.record(kind, 0, err)
		return
	}
	defer conn.Close()
	began := time.Now()
	closed := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		closed <- line
	}()
	_, _ = conn.Write([]byte(head))
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	outcome := "held 60s (client gave up)"
	for held := false; !held; {
		select {
		case line := <-closed:
			if f := strings.Fields(line); len(f) >= 2 {
				outcome = "answered " + f[1]
			} else {
				outcome = "closed by daemon"
			}
			held = true
		case <-ctx.Done():
			outcome = "soak ended"
			held = true
		case <-tick.C:
			if time.Since(began) > 60*time.Second {
				held = true
				continue
			}
			b := "a" // one more byte of the body, or of a header line that never ends
			if !body {
				b = "X"
			}
			_, _ = conn.Write([]byte(b))
		}
	}
	kept := time.Since(began)
	for {
		old := s.slowMax.Load()
		if int64(kept) <= old || s.slowMax.CompareAndSwap(old, int64(kept)) {
			break
		}
	}
	bucket := "<10s"
	switch {
	case kept >= 60*time.Second:
		bucket = "≥60s"
	case kept >= 30*time.Second:
		bucket = "30–60s"
	case kept >= 10*time.Second:
		bucket = "10–30s"
	}
	s.mu.Lock()
	if s.outcome[kind] == nil {
		s.outcome[kind] = map[string]int{}
	}
	s.outcome[kind][outcome+" after "+bucket]++
	s.mu.Unlock()
}

// tally is one direction's count.
type tally struct {
	sent, delivered, lost, duplicated int
	lostIDs, dupIDs                   []int
	copies                            map[int]int
	latency                           []time.Duration
}

func (tl tally) p(pct int) time.Duration {
	if len(tl.latency) == 0 {
		return 0
	}
	l := slices.Clone(tl.latency)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*pct/100)].Round(10 * time.Millisecond)
}

func newTally(sent []time.Time, copies map[int]int, arrived map[int]time.Time) tally {
	tl := tally{sent: len(sent), copies: copies}
	for n := 1; n <= len(sent); n++ {
		switch c := copies[n]; {
		case c == 0:
			tl.lost++
			tl.lostIDs = append(tl.lostIDs, n)
		case c > 1:
			tl.duplicated++
			tl.dupIDs = append(tl.dupIDs, n)
		}
		if copies[n] > 0 {
			tl.delivered++
			tl.latency = append(tl.latency, arrived[n].Sub(sent[n-1]))
		}
	}
	return tl
}

var (
	soakM = regexp.MustCompile(`^soak-m-(\d+)$`)
	soakS = regexp.MustCompile(`^soak-s-(\d+)$`)
)

func (s *soak) countMatrixToSMS() tally {
	copies := map[int]int{}
	first := map[int]time.Time{}
	s.d.fake.mu.Lock()
	for _, p := range s.d.fake.posts {
		if m := soakM.FindStringSubmatch(p.Get("Body")); m != nil && p.Get("To") == e2eContact {
			n, _ := strconv.Atoi(m[1])
			copies[n]++
		}
	}
	for body, at := range s.d.fake.at {
		if m := soakM.FindStringSubmatch(body); m != nil {
			n, _ := strconv.Atoi(m[1])
			first[n] = at // the last copy's time: the latency until it was there for sure
		}
	}
	s.d.fake.mu.Unlock()
	s.mu.Lock()
	sent := slices.Clone(s.mSent)
	s.mu.Unlock()
	return newTally(sent, copies, first)
}

// portalCount is what alice's portal holds.
type portalCount struct {
	copies  map[int]int
	forged  int
	notices []string
}

func (p portalCount) noticeKinds() map[string]int {
	kinds := map[string]int{}
	for _, n := range p.notices {
		k := n
		if len(k) > 60 {
			k = k[:60] + "…"
		}
		kinds[k]++
	}
	return kinds
}

// readPortal reads alice's portal from the newest event back to the first.
func (s *soak) readPortal() (portalCount, error) {
	p := portalCount{copies: map[int]int{}}
	from := ""
	for range 100 {
		var page struct {
			Chunk []roomEvent `json:"chunk"`
			End   string      `json:"end"`
		}
		path := "/_matrix/client/v3/rooms/" + url.PathEscape(s.d.portal) + "/messages?dir=b&limit=500"
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		status, err := s.hsDo(http.MethodGet, path, s.d.token, nil, &page)
		if err != nil || status != http.StatusOK {
			return p, fmt.Errorf("read the portal: %d %v", status, err)
		}
		for _, ev := range page.Chunk {
			if ev.Type != "m.room.message" {
				continue
			}
			b, _ := ev.Content["body"].(string)
			switch {
			case ev.Sender == s.d.bot:
				p.notices = append(p.notices, b)
			case strings.HasPrefix(b, "soak-forged-"):
				p.forged++
			default:
				if m := soakS.FindStringSubmatch(b); m != nil {
					n, _ := strconv.Atoi(m[1])
					p.copies[n]++
					s.seen(n)
				}
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			return p, nil
		}
		from = page.End
	}
	return p, errors.New("read the portal: more than 100 pages")
}

func (s *soak) countSMSToMatrix(p portalCount) tally {
	s.mu.Lock()
	sent := slices.Clone(s.sSent)
	s.mu.Unlock()
	s.mu.Lock()
	at := maps.Clone(s.sSeen)
	s.mu.Unlock()
	return newTally(sent, p.copies, at)
}

// classifyDuplicates sorts duplicated SMS into those explained by the
// kill -9 window and the others. A copy is in the window when the fake
// Twilio answered it among the last few posts before a kill (the delivery
// workers send at most delivery.workers at once) and its MessageSid never
// appears in the daemon's log ("Sent SMS", logged at debug once the
// MessageSid is stored, and every later line about it).
func (s *soak) classifyDuplicates(m tally) (window, other []string) {
	const lastPosts = 8
	logData, _ := os.ReadFile(s.sd.logPath)
	s.d.fake.mu.Lock()
	posts := map[int][]int{}
	for i, p := range s.d.fake.posts {
		if mm := soakM.FindStringSubmatch(p.Get("Body")); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			posts[n] = append(posts[n], i)
		}
	}
	s.d.fake.mu.Unlock()
	s.mu.Lock()
	killPosts := slices.Clone(s.killPosts)
	s.mu.Unlock()
	for _, n := range m.dupIDs {
		explained := true
		var why []string
		for _, i := range posts[n][:len(posts[n])-1] {
			sid := sentSID(s.d.fake, i)
			recorded := bytes.Contains(logData, []byte(`"message_sid":"`+sid+`"`))
			beforeKill := -1
			for k, kp := range killPosts {
				if i < kp && i >= kp-lastPosts {
					beforeKill = k + 1
					break
				}
			}
			why = append(why, fmt.Sprintf("post #%d %s: recorded in log %t, among the last %d posts before kill %d", i+1, sid, recorded, lastPosts, beforeKill))
			if recorded || beforeKill < 0 {
				explained = false
			}
		}
		desc := fmt.Sprintf("soak-m-%d, %d copies: %s", n, len(posts[n]), strings.Join(why, "; "))
		if explained {
			window = append(window, desc)
		} else {
			other = append(other, desc)
		}
	}
	return window, other
}

// jitter is a random duration in [0, d).
func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}

// seen records when soak-s-<n> was first seen in the portal.
func (s *soak) seen(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sSeen[n]; !ok {
		s.sSeen[n] = time.Now()
	}
}

// watchPortal reads the newest events of the portal every 2 s, for the
// SMS→Matrix latency (the events' own timestamps are the SMS's, as the
// bridge backdates them).
func (s *soak) watchPortal(ctx context.Context, _ *rand.Rand) {
	for pause(ctx, 2*time.Second) {
		var page struct {
			Chunk []roomEvent `json:"chunk"`
		}
		path := "/_matrix/client/v3/rooms/" + url.PathEscape(s.d.portal) + "/messages?dir=b&limit=30"
		if status, err := s.hsDo(http.MethodGet, path, s.d.token, nil, &page); err != nil || status != http.StatusOK {
			continue
		}
		for _, ev := range page.Chunk {
			b, _ := ev.Content["body"].(string)
			if m := soakS.FindStringSubmatch(b); m != nil && ev.Sender != s.d.bot {
				n, _ := strconv.Atoi(m[1])
				s.seen(n)
			}
		}
	}
}

var backoffRE = regexp.MustCompile(`backing off for ([0-9a-z.]+)`)

// dendriteBackoffs counts Dendrite's failed appservice transactions by the
// backoff that followed.
func dendriteBackoffs(log string) string {
	n := 0
	by := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Unable to send transaction to appservice") {
			n++
			if m := backoffRE.FindStringSubmatch(line); m != nil {
				by[m[1]]++
			}
		}
	}
	return fmt.Sprintf("%d failed appservice transaction attempts, backoffs %v", n, by)
}

// summarizeLog counts the daemon's log lines by level, and its warnings and
// errors by message, with the test's own markers.
func summarizeLog(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	levels := map[string]int{}
	msgs := map[string]int{}
	other := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var entry struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			Soak    string `json:"soak"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil {
			other++
			if other <= 5 {
				msgs["(not JSON) "+line[:min(len(line), 100)]]++
			}
			continue
		}
		if entry.Soak != "" {
			continue
		}
		levels[entry.Level]++
		if entry.Level == "warn" || entry.Level == "error" || entry.Level == "fatal" || entry.Level == "panic" {
			msgs[entry.Level+": "+entry.Message]++
		}
	}
	out := []string{fmt.Sprintf("log lines by level: %v; lines not JSON: %d", levels, other)}
	keys := slices.Sorted(maps.Keys(msgs))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%4d× %s", msgs[k], k))
	}
	return out
}
