// Package testenv holds the small pieces shared by switchboard's test
// harnesses: finding the repository root, skipping (or failing, in CI) when a
// peer is not installed, picking loopback ports, and stopping child processes.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the directory holding switchboard's go.mod, found by
// walking up from the working directory (go test runs each test binary in
// its package directory). It fails the test when there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

// FindRepoRoot is RepoRoot without a testing.TB: it returns the first
// directory at or above the working directory that holds a go.mod file.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// Required reports whether the environment variable env is set to a true
// value ("1", "true", ...), meaning the peer it names must be available.
func Required(env string) bool {
	v, err := strconv.ParseBool(os.Getenv(env))
	return err == nil && v
}

// SkipUnlessRequired skips the test with the given reason, or fails it
// when the environment variable env says the missing peer is required (as CI
// does). The reason should say how to install or enable what is missing.
func SkipUnlessRequired(t testing.TB, env, reason string) {
	t.Helper()
	if Required(env) {
		t.Fatalf("%s (%s is set, so this is an error rather than a skip)", reason, env)
	}
	t.Skipf("%s (set %s=1 to make this an error)", reason, env)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before: two servers started by one
// test (an appservice listener and Dendrite, say) never get the same port
// just because the first had not bound it yet. Another process may still
// take it before the caller binds it, so callers that start a server on it
// should retry with a new port when the bind fails.
func FreePort() (int, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port, nil
		}
	}
	return 0, errors.New("find a free port: every port offered had been handed out before")
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// Tail returns at most the last n lines of the file at path, for failure
// output. A file that cannot be read yields a note saying so.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return TailBytes(data, n)
}

// TailBytes returns at most the last n lines of data, without trailing
// newlines.
func TailBytes(data []byte, n int) string {
	data = bytes.TrimRight(data, "\n")
	if n <= 0 {
		return ""
	}
	start := len(data)
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(data[:start], '\n')
		if j < 0 {
			return string(data)
		}
		start = j
	}
	return string(data[start+1:])
}

// Process is a started child process whose exit is watched in the
// background, so that its end can be waited for from several places.
type Process struct {
	// Cmd is the started command; do not call its Wait.
	Cmd *exec.Cmd

	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// StartProcess starts cmd and returns a Process watching it. Only that one
// process is ever signalled: harnesses run their peers directly (no shell, no
// npx) so that one PID is the whole peer.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and with which error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process, waits up to grace for it to exit, then
// sends SIGKILL and waits for it. It is safe to call more than once and after
// the process has exited.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		if exited, _ := p.Exited(); exited {
			return
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		_ = p.Cmd.Process.Kill()
		<-p.done
	})
}

// WaitFor calls check every interval until it returns nil, the process
// exits, or ctx ends. It returns the last error from check otherwise.
func (p *Process) WaitFor(ctx context.Context, interval time.Duration, check func(context.Context) error) error {
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v) before it was ready; last check: %w", p.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w; last check: %w", ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// EnvRequireNode names the environment variable that, set to 1, makes a
// missing Node.js or testdata/node/node_modules fail the tests that need them
// instead of skipping them.
const EnvRequireNode = "SWITCHBOARD_REQUIRE_NODE"

// NodeDir returns the absolute path of testdata/node, after checking that
// the node command is in PATH and that the packages were installed there
// (`npm ci --prefix testdata/node`). Otherwise it skips t, or fails it when
// the environment variable requireEnv is set to 1.
func NodeDir(t testing.TB, requireEnv string) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "testdata", "node")
	if _, err := exec.LookPath("node"); err != nil {
		SkipUnlessRequired(t, requireEnv, "Node.js (node 20 or newer) is not in PATH; install it, then run `npm ci --prefix testdata/node`")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		SkipUnlessRequired(t, requireEnv, "testdata/node/node_modules is missing; run `npm ci --prefix testdata/node` in the repository root")
	}
	return dir
}
