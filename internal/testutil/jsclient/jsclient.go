// Package jsclient drives testdata/node/e2ee-client.mjs, an independent
// end-to-end-encrypting Matrix client built on matrix-js-sdk's Rust crypto,
// from Go tests. It is the "other side" of E2EE tests: what it decrypts was
// really encrypted to it by someone else's implementation.
//
// The script speaks JSON lines over stdin/stdout. Tests skip when Node or
// testdata/node/node_modules are missing, unless SWITCHBOARD_REQUIRE_NODE=1
// makes that an error.
package jsclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// Node.js or node_modules fail the test instead of skipping it.
const EnvRequire = testenv.EnvRequireNode

// ReadyTimeout bounds the client's start: loading the wasm crypto, the
// first sync and uploading its device keys.
const ReadyTimeout = 60 * time.Second

// callMargin is how much longer than a command's own timeout the Go side
// waits for its answer.
const callMargin = 15 * time.Second

// defaultTimeout is the timeout of commands that take none.
const defaultTimeout = 30 * time.Second

const stderrTailLines = 60

// Client is one running e2ee-client.mjs process: one Matrix device.
type Client struct {
	// UserID is the Matrix user the client is logged in as.
	UserID string
	// DeviceID is the client's device.
	DeviceID string
	// StderrPath collects the script's diagnostics.
	StderrPath string

	proc  *testenv.Process
	stdin io.WriteCloser

	mu      sync.Mutex
	nextID  int
	pending map[int]chan reply
	readErr error
	done    chan struct{}
}

type reply struct {
	raw json.RawMessage
	ok  bool
	err string
}

// Message is a room message the client received.
type Message struct {
	// RoomID is the room the message was sent in.
	RoomID string `json:"room"`
	// Sender is the sending user's ID.
	Sender string `json:"sender"`
	// Body is the plaintext body.
	Body string `json:"body"`
	// MsgType is the msgtype, like m.text or m.notice.
	MsgType string `json:"msgtype"`
	// EventID is the event's ID.
	EventID string `json:"event_id"`
	// Decrypted is true when the event arrived encrypted and the client
	// decrypted it.
	Decrypted bool `json:"decrypted"`
}

// Sent is the result of Send.
type Sent struct {
	// EventID is the ID the server gave the event.
	EventID string `json:"event_id"`
	// Encrypted is true when the client sent the message as a Megolm
	// encrypted event.
	Encrypted bool `json:"encrypted"`
}

// Invite is a room the client was invited to.
type Invite struct {
	// RoomID is the room invited to.
	RoomID string `json:"room_id"`
	// Inviter is the user who sent the invite.
	Inviter string `json:"inviter"`
}

// CreateRoomOptions describe a room for CreateRoom.
type CreateRoomOptions struct {
	// Name is the room name; none when empty.
	Name string `json:"name,omitempty"`
	// Encrypted turns on m.megolm.v1.aes-sha2 from the room's creation.
	Encrypted bool `json:"encrypted"`
	// Invite lists users to invite.
	Invite []string `json:"invite,omitempty"`
	// IsDirect marks the room as a direct chat with the invited users
	// (is_direct on the invite and the creator's m.direct account data).
	IsDirect bool `json:"is_direct"`
}

// Start runs the client for a device that already has an access token and
// stops it when t ends. deviceID must be the device the token belongs to
// (Dendrite's register and login answers name it); when empty the script
// asks the server with whoami.
func Start(t testing.TB, hsURL, userID, token, deviceID string) *Client {
	t.Helper()
	return start(t, []string{
		"MATRIX_HOMESERVER=" + hsURL,
		"MATRIX_USER_ID=" + userID,
		"MATRIX_ACCESS_TOKEN=" + token,
		"MATRIX_DEVICE_ID=" + deviceID,
	})
}

// StartLogin runs the client for a new device that it logs in itself with
// a password; deviceID names the device (the server makes one up when it is
// empty).
func StartLogin(t testing.TB, hsURL, username, password, deviceID string) *Client {
	t.Helper()
	return start(t, []string{
		"MATRIX_HOMESERVER=" + hsURL,
		"MATRIX_USERNAME=" + username,
		"MATRIX_PASSWORD=" + password,
		"MATRIX_DEVICE_ID=" + deviceID,
	})
}

func start(t testing.TB, env []string) *Client {
	t.Helper()
	nodeDir := testenv.NodeDir(t, EnvRequire)
	script := filepath.Join(nodeDir, "e2ee-client.mjs")
	c := &Client{
		StderrPath: filepath.Join(t.TempDir(), "e2ee-client.stderr"),
		pending:    map[int]chan reply{},
		done:       make(chan struct{}),
	}
	stderr, err := os.Create(c.StderrPath)
	if err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	// Credentials go through the environment, not the command line that
	// ps shows.
	cmd := exec.Command("node", script)
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	// An os.Pipe rather than StdoutPipe: the process is waited for in the
	// background, and Wait must not close the pipe before it is read out.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	cmd.Stdout = stdoutW
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	began := time.Now()
	c.proc, err = testenv.StartProcess(cmd)
	stdoutW.Close()
	if err != nil {
		stdout.Close()
		t.Fatalf("jsclient: start node: %v", err)
	}
	t.Cleanup(func() {
		c.stop()
		stderr.Close()
		if t.Failed() {
			t.Logf("--- tail of e2ee-client stderr (%s) ---\n%s", c.UserID, testenv.Tail(c.StderrPath, stderrTailLines))
		}
	})

	ready := make(chan readyLine, 1)
	go func() {
		defer stdout.Close()
		c.read(stdout, ready)
	}()
	select {
	case r := <-ready:
		if r.Event != "ready" {
			t.Fatalf("jsclient: the client did not start: %s\n--- stderr ---\n%s", r.Error, testenv.Tail(c.StderrPath, stderrTailLines))
		}
		c.UserID, c.DeviceID = r.UserID, r.DeviceID
	case <-c.done:
		t.Fatalf("jsclient: the client exited before it was ready: %v\n--- stderr ---\n%s", c.readErr, testenv.Tail(c.StderrPath, stderrTailLines))
	case <-time.After(ReadyTimeout):
		t.Fatalf("jsclient: the client was not ready after %s\n--- stderr ---\n%s", ReadyTimeout, testenv.Tail(c.StderrPath, stderrTailLines))
	}
	t.Logf("jsclient: %s device %s ready in %s", c.UserID, c.DeviceID, time.Since(began).Round(time.Millisecond))
	return c
}

type readyLine struct {
	Event    string `json:"event"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Error    string `json:"error"`
}

type envelope struct {
	ID    *int   `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Event string `json:"event"`
}

// read routes the script's stdout lines: the ready (or fatal) line to
// ready, answers to the calls waiting for them.
func (c *Client) read(stdout io.Reader, ready chan<- readyLine) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	sentReady := false
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var env envelope
		if err := json.Unmarshal(line, &env); err != nil {
			continue // not a protocol line; the script keeps stdout clean, so this is unexpected noise
		}
		if env.ID == nil {
			if !sentReady && (env.Event == "ready" || env.Event == "fatal") {
				var r readyLine
				_ = json.Unmarshal(line, &r)
				ready <- r
				sentReady = true
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[*env.ID]
		delete(c.pending, *env.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- reply{raw: line, ok: env.OK, err: env.Error}
		}
	}
	c.mu.Lock()
	c.readErr = sc.Err()
	if c.readErr == nil {
		c.readErr = errors.New("stdout closed")
	}
	c.mu.Unlock()
	close(c.done)
}

// Call sends the command cmd with the given arguments and decodes the
// answer into out (when not nil). It returns the script's error for a
// failed command, and ctx's error when no answer came in time. The typed
// methods are built on it.
func (c *Client) Call(ctx context.Context, cmd string, args map[string]any, out any) error {
	msg := map[string]any{}
	for k, v := range args {
		msg[k] = v
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	msg["cmd"], msg["id"] = cmd, id
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	data, err := json.Marshal(msg)
	if err != nil {
		forget()
		return fmt.Errorf("encode %s: %w", cmd, err)
	}
	c.mu.Lock()
	_, err = c.stdin.Write(append(data, '\n'))
	c.mu.Unlock()
	if err != nil {
		forget()
		return fmt.Errorf("send %s: %w", cmd, err)
	}
	select {
	case r := <-ch:
		if !r.ok {
			return fmt.Errorf("%s: %s", cmd, r.err)
		}
		if out != nil {
			if err := json.Unmarshal(r.raw, out); err != nil {
				return fmt.Errorf("decode %s answer %s: %w", cmd, r.raw, err)
			}
		}
		return nil
	case <-c.done:
		forget()
		return fmt.Errorf("%s: the client exited (%v)", cmd, c.readErr)
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%s: no answer: %w", cmd, ctx.Err())
	}
}

// call runs Call with a deadline a margin past timeout and fails t on error.
func (c *Client) call(t testing.TB, timeout time.Duration, cmd string, args map[string]any, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+callMargin)
	defer cancel()
	if err := c.Call(ctx, cmd, args, out); err != nil {
		t.Fatalf("jsclient %s: %v", c.UserID, err)
	}
}

func millis(d time.Duration) int64 { return d.Milliseconds() }

// CreateRoom creates a room and returns its ID once the client has joined
// it.
func (c *Client) CreateRoom(t testing.TB, opts CreateRoomOptions) string {
	t.Helper()
	args := map[string]any{
		"name": opts.Name, "encrypted": opts.Encrypted, "invite": opts.Invite, "is_direct": opts.IsDirect,
		"timeout_ms": millis(defaultTimeout),
	}
	if opts.Invite == nil {
		args["invite"] = []string{}
	}
	var resp struct {
		RoomID string `json:"room_id"`
	}
	c.call(t, defaultTimeout, "create_room", args, &resp)
	return resp.RoomID
}

// Join joins a room (by ID or alias) and returns its ID once the client's
// sync shows the join.
func (c *Client) Join(t testing.TB, room string) string {
	t.Helper()
	var resp struct {
		RoomID string `json:"room_id"`
	}
	c.call(t, defaultTimeout, "join", map[string]any{"room": room, "timeout_ms": millis(defaultTimeout)}, &resp)
	return resp.RoomID
}

// Send sends an m.text message. In a room that is encrypted on the server it
// waits until the client knows that, so it never sends plain text there.
// Wait (WaitMember) for the recipients' joins first: devices of members
// who have not joined yet do not get the Megolm session.
func (c *Client) Send(t testing.TB, roomID, body string) Sent {
	t.Helper()
	var sent Sent
	c.call(t, defaultTimeout, "send", map[string]any{"room": roomID, "body": body, "timeout_ms": millis(defaultTimeout)}, &sent)
	return sent
}

// WaitMessage returns the oldest message from another user in roomID (any
// room when empty) that no earlier WaitMessage returned, waiting up to
// timeout for one. On timeout the failure lists events the client could not
// decrypt.
func (c *Client) WaitMessage(t testing.TB, roomID string, timeout time.Duration) Message {
	t.Helper()
	var m Message
	c.call(t, timeout, "wait_message", map[string]any{"room": roomID, "timeout_ms": millis(timeout)}, &m)
	return m
}

// WaitMessageFrom is WaitMessage limited to messages sent by sender.
func (c *Client) WaitMessageFrom(t testing.TB, roomID, sender string, timeout time.Duration) Message {
	t.Helper()
	var m Message
	c.call(t, timeout, "wait_message", map[string]any{"room": roomID, "sender": sender, "timeout_ms": millis(timeout)}, &m)
	return m
}

// WaitMember waits until the client sees userID with the given membership
// ("join", "invite", "leave", ...) in roomID.
func (c *Client) WaitMember(t testing.TB, roomID, userID, membership string, timeout time.Duration) {
	t.Helper()
	c.call(t, timeout, "wait_member", map[string]any{
		"room": roomID, "user": userID, "membership": membership, "timeout_ms": millis(timeout),
	}, nil)
}

// WaitInvite returns the oldest invite not returned before, waiting up to
// timeout for one.
func (c *Client) WaitInvite(t testing.TB, timeout time.Duration) Invite {
	t.Helper()
	var inv Invite
	c.call(t, timeout, "wait_invite", map[string]any{"timeout_ms": millis(timeout)}, &inv)
	return inv
}

// Quit asks the client to stop syncing and exit, and waits for it. The
// cleanup that Start registers does the same for clients still running.
func (c *Client) Quit(t testing.TB) {
	t.Helper()
	c.call(t, 5*time.Second, "quit", nil, nil)
	select {
	case <-c.proc.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("jsclient %s: still running 10 s after quit", c.UserID)
	}
	c.proc.Stop(time.Second)
}

// Stderr returns the script's diagnostics so far.
func (c *Client) Stderr() string {
	data, err := os.ReadFile(c.StderrPath)
	if err != nil {
		return ""
	}
	return string(data)
}

// stop closes stdin (the script quits on EOF) and makes sure the process
// is gone.
func (c *Client) stop() {
	c.mu.Lock()
	_ = c.stdin.Close()
	c.mu.Unlock()
	select {
	case <-c.proc.Done():
	case <-time.After(5 * time.Second):
	}
	c.proc.Stop(2 * time.Second)
}
