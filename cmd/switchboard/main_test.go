package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"maunium.net/go/mautrix/appservice"

	"github.com/switchboard-bridge/switchboard/daemon"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

var binary string

// TestMain builds the real binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchboard")
	// The README builds with the goolm tag (pure-Go end-to-end encryption).
	out, err := exec.Command("go", "build", "-tags", "goolm", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build failed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort()
	require.NoError(t, err)
	return "127.0.0.1:" + strconv.Itoa(port)
}

// withHomeserver writes the daemon's config and registration in dir
// (`switchboard -g` with env), starts Dendrite with that registration, and
// returns it with env pointing the daemon at it.
func withHomeserver(t *testing.T, dir string, env []string, opts dendrite.Options) (*dendrite.Server, []string) {
	t.Helper()
	out, err := cmd(dir, env, "-g").CombinedOutput()
	require.NoError(t, err, "%s", out)
	opts.Registrations = append(opts.Registrations, filepath.Join(dir, "registration.yaml"))
	hs := dendrite.Start(t, opts)
	return hs, append(env, "SWITCHBOARD_HOMESERVER_ADDRESS="+hs.URL, "SWITCHBOARD_HOMESERVER_DOMAIN="+hs.ServerName)
}

// startDaemon runs the daemon in dir with env until the test ends, and
// returns its output, which is printed when the test fails.
func startDaemon(t *testing.T, dir string, env []string) *bytes.Buffer {
	t.Helper()
	c := cmd(dir, env)
	logs := &bytes.Buffer{}
	c.Stdout, c.Stderr = logs, logs
	require.NoError(t, c.Start())
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
		if t.Failed() {
			t.Logf("switchboard output:\n%s", logs.String())
		}
	})
	return logs
}

// cmd returns the switchboard command in dir, with a clean SWITCHBOARD_ env.
// A command that does not exit is killed after two minutes, so a wrong
// expectation fails instead of hanging the test run.
func cmd(dir string, env []string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c := exec.CommandContext(ctx, binary, args...)
	c.Cancel = func() error { cancel(); return c.Process.Kill() }
	c.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, env...)
	return c
}

func TestVersion(t *testing.T) {
	out, err := cmd(t.TempDir(), nil, "version").Output()
	require.NoError(t, err)
	require.Regexp(t, `^switchboard \S+\n$`, string(out))
}

func TestFirstRunWritesConfigAndServesHealth(t *testing.T) {
	dir := t.TempDir()
	listen := freePort(t)
	c := cmd(dir, []string{"SWITCHBOARD_APPSERVICE_LISTEN=" + listen})
	stdout, err := c.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	require.NoError(t, c.Start())
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	var health daemon.HealthReport
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + listen + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&health) == nil
	}, 20*time.Second, 50*time.Millisecond, "no /health; stderr:\n%s", &stderr)
	require.Equal(t, "ok", string(health.Database.State))
	require.NotEqual(t, "ok", string(health.Homeserver.State), "no homeserver runs at localhost:8008 here")

	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	require.NotContains(t, string(cfg), ": generate", "secrets must be generated")
	info, err := os.Stat(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	reg, err := appservice.LoadRegistration(filepath.Join(dir, "registration.yaml"))
	require.NoError(t, err)
	require.Len(t, reg.AppToken, 64)
	require.Contains(t, string(cfg), reg.AppToken, "registration and config share the as_token")
	_, err = os.Stat(filepath.Join(dir, "switchboard.db"))
	require.NoError(t, err, "SQLite database next to the config")

	resp, err := http.Get("http://" + listen + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "switchboard_queue_depth")

	// It keeps running (retrying the homeserver) and stops cleanly on SIGTERM.
	require.Nil(t, c.ProcessState)
	require.NoError(t, c.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.Wait())
	require.Contains(t, stderr.String(), "Homeserver not reachable")
}

func TestBadConfigExitsWithOneLineNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, key string
	}{
		{"unknown key", "appservice:\n  listn: 127.0.0.1:1\n", "appservice.listn"},
		{"bad duration", "retention:\n  metadata: 5 days\n", "retention.metadata"},
		{"placeholder", "sms:\n  enabled: true\n  public_url: https://sb.test.net\n  twilio:\n    account_sid: ACxxxxxxxx\n    auth_token: tok\n    numbers: [\"+14155550100\"]\n", "sms.twilio.account_sid"},
		{"bad number", "sms:\n  enabled: true\n  public_url: https://sb.test.net\n  twilio:\n    account_sid: AC0123456789abcdef0123456789abcdef\n    auth_token: tok\n    numbers: [\"+1555\"]\n", "sms.twilio.numbers[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// Start from a valid generated config and break one key.
			require.NoError(t, cmd(dir, nil, "-e").Run())
			path := filepath.Join(dir, "config.yaml")
			base, err := os.ReadFile(path)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, yaml.Unmarshal(base, &doc))
			var patch map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(tc.yaml), &patch))
			merge(doc, patch)
			secrets(doc)
			out, err := yaml.Marshal(doc)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, out, 0o600))

			c := cmd(dir, []string{"SWITCHBOARD_APPSERVICE_LISTEN=" + freePort(t)})
			var stderr bytes.Buffer
			c.Stderr = &stderr
			err = c.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "must exit non-zero")
			require.NotZero(t, exit.ExitCode())
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			require.Len(t, lines, 1, "one line: %q", stderr.String())
			require.Contains(t, lines[0], tc.key)
		})
	}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// secrets fills the example's generate placeholders, as the daemon would.
func secrets(doc map[string]any) {
	doc["appservice"].(map[string]any)["as_token"] = "astoken-0123456789abcdef0123456789abcdef"
	doc["appservice"].(map[string]any)["hs_token"] = "hstoken-0123456789abcdef0123456789abcdef"
	doc["encryption"].(map[string]any)["pickle_key"] = "picklekey"
	doc["identity"].(map[string]any)["secret"] = "identity-secret-identity-secret"
}

func TestUnreachableDatabaseExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	c := cmd(dir, []string{
		"SWITCHBOARD_APPSERVICE_LISTEN=" + freePort(t),
		"SWITCHBOARD_DATABASE_TYPE=postgres",
		"SWITCHBOARD_DATABASE_URI=postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2",
	})
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err := c.Run()
	require.Error(t, err)
	require.Contains(t, stderr.String(), "database unreachable")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1-countLogLines(stderr.String()))
}

// countLogLines counts JSON log lines, which are not part of the one-line reason.
func countLogLines(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "{") {
			n++
		}
	}
	return n
}

func TestExampleRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, cmd(dir, nil, "-e", "-c", "example.yaml").Run())
	data, err := os.ReadFile(filepath.Join(dir, "example.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(data), "as_token: generate")
	var stderr bytes.Buffer
	c := cmd(dir, nil, "-e", "-c", "example.yaml")
	c.Stderr = &stderr
	require.Error(t, c.Run())
	require.Contains(t, stderr.String(), "already exists")
}

// TestRegistrationAcceptedByDendrite runs `switchboard -g` and starts a real
// Dendrite with the registration it wrote.
func TestRegistrationAcceptedByDendrite(t *testing.T) {
	dir := t.TempDir()
	c := cmd(dir, nil, "-g", "-r", "reg.yaml")
	out, err := c.CombinedOutput()
	require.NoError(t, err, "%s", out)
	regPath := filepath.Join(dir, "reg.yaml")
	reg, err := appservice.LoadRegistration(regPath)
	require.NoError(t, err)

	hs := dendrite.Start(t, dendrite.Options{Registrations: []string{regPath}})
	require.Empty(t, hs.AppServiceLogErrors())
	user, status := hs.Whoami(t, reg.AppToken)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "@switchboard:"+hs.ServerName, user)
	_, status = hs.Whoami(t, "not-the-token")
	require.Equal(t, http.StatusUnauthorized, status)
}

// TestNewUserTalksToTheBot runs the daemon binary against a real Dendrite
// the way an admin sets it up (-g, register, start) and checks that a new
// user who DMs the bot gets the command list.
func TestNewUserTalksToTheBot(t *testing.T) {
	dir := t.TempDir()
	listen := freePort(t)
	env := []string{
		"SWITCHBOARD_APPSERVICE_LISTEN=" + listen,
		"SWITCHBOARD_APPSERVICE_ADDRESS=http://" + listen,
	}
	hs, env := withHomeserver(t, dir, env, dendrite.Options{})
	startDaemon(t, dir, env)

	userID, token := hs.RegisterUser(t, "alice", "correct horse battery")
	bot := "@switchboard:" + hs.ServerName
	var created struct {
		RoomID string `json:"room_id"`
	}
	status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", token,
		map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created)
	require.Equal(t, http.StatusOK, status)
	room := created.RoomID

	// Wait for the bot to join, then ask for help.
	require.Eventually(t, func() bool {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+room+"/joined_members", token, nil, &members)
		_, ok := members.Joined[bot]
		return ok
	}, 30*time.Second, 200*time.Millisecond, "the bot never joined the DM")
	status = hs.DoJSON(t, http.MethodPut, "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/t1", token,
		map[string]any{"msgtype": "m.text", "body": "help"}, nil)
	require.Equal(t, http.StatusOK, status)

	var answer string
	require.Eventually(t, func() bool {
		var msgs struct {
			Chunk []struct {
				Sender  string         `json:"sender"`
				Type    string         `json:"type"`
				Content map[string]any `json:"content"`
			} `json:"chunk"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+room+"/messages?dir=b&limit=20", token, nil, &msgs)
		for _, ev := range msgs.Chunk {
			body, _ := ev.Content["body"].(string)
			// The bot greets on joining; the answer to help lists commands.
			if ev.Sender == bot && ev.Type == "m.room.message" && ev.Content["msgtype"] == "m.notice" && strings.Contains(body, "whoami") {
				answer = body
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no answer from the bot to %s", userID)
	require.Contains(t, answer, "start")
	require.Contains(t, answer, "help")
}
