// Package prism runs Stoplight Prism as a contract mock of an OpenAPI
// description, for switchboard's Twilio tests.
//
// Prism validates each request against the spec (paths, auth, required form
// fields, content types) and answers with the spec's examples. It is run
// from testdata/node/node_modules with node directly, so one PID is the
// whole mock. Tests skip when Node or the packages or the spec are missing,
// unless SWITCHBOARD_REQUIRE_PRISM=1 makes that an error.
package prism

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// Prism or spec fail the test instead of skipping it. CI sets it.
const EnvRequire = "SWITCHBOARD_REQUIRE_PRISM"

// ReadyTimeout bounds how long Start waits for Prism to listen. Prism needs
// about 2 s to load Twilio's spec.
const ReadyTimeout = 60 * time.Second

const logTailLines = 60

// Server is a running Prism mock.
type Server struct {
	// URL is the mock's base URL, like http://127.0.0.1:PORT, standing in
	// for https://api.twilio.com.
	URL string
	// SpecPath is the OpenAPI document being mocked.
	SpecPath string
	// LogPath collects Prism's output, including its validation messages.
	LogPath string

	proc *testenv.Process
}

// SpecPath returns the Prism-ready copy of Twilio's 2010-04-01 API spec,
// <repo>/../shared/twilio/twilio_api_v2010.prism.json. It skips t (fails it
// under SWITCHBOARD_REQUIRE_PRISM=1) when the file is absent.
func SpecPath(t testing.TB) string {
	t.Helper()
	path := filepath.Join(filepath.Dir(testenv.RepoRoot(t)), "shared", "twilio", "twilio_api_v2010.prism.json")
	if _, err := os.Stat(path); err != nil {
		testenv.SkipUnlessRequired(t, EnvRequire, fmt.Sprintf("Twilio's OpenAPI spec for Prism is missing (%v); it is expected beside the repository at ../shared/twilio/", err))
	}
	return path
}

// Start runs Prism mocking specPath on a free loopback port and stops it
// when t ends. It skips t when Node, testdata/node/node_modules or the spec
// are missing (fails it under SWITCHBOARD_REQUIRE_PRISM=1) and fails t,
// printing Prism's log, when the mock does not come up.
func Start(t testing.TB, specPath string) *Server {
	t.Helper()
	nodeDir := testenv.NodeDir(t, EnvRequire)
	cli := filepath.Join(nodeDir, "node_modules", "@stoplight", "prism-cli", "dist", "index.js")
	if _, err := os.Stat(cli); err != nil {
		testenv.SkipUnlessRequired(t, EnvRequire, "Prism is not installed in testdata/node; run `npm ci --prefix testdata/node`")
	}
	abs, err := filepath.Abs(specPath)
	if err != nil {
		t.Fatalf("prism: spec path %q: %v", specPath, err)
	}
	if _, err := os.Stat(abs); err != nil {
		testenv.SkipUnlessRequired(t, EnvRequire, fmt.Sprintf("OpenAPI spec for Prism is missing: %v", err))
	}
	s := &Server{SpecPath: abs, LogPath: filepath.Join(t.TempDir(), "prism.log")}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatalf("prism: create log: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		logFile.Close()
		if t.Failed() {
			t.Logf("--- tail of Prism log %s ---\n%s", s.LogPath, testenv.Tail(s.LogPath, logTailLines))
		}
	})

	began := time.Now()
	for attempt := 0; ; attempt++ {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatalf("prism: %v", err)
		}
		err = s.launch(cli, nodeDir, port, logFile)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(testenv.Tail(s.LogPath, 20), "EADDRINUSE") {
			continue
		}
		t.Fatalf("prism: %v\n--- tail of %s ---\n%s", err, s.LogPath, testenv.Tail(s.LogPath, logTailLines))
	}
	t.Logf("prism: mocking %s at %s, ready in %s", filepath.Base(abs), s.URL, time.Since(began).Round(time.Millisecond))
	return s
}

func (s *Server) launch(cli, nodeDir string, port int, logFile *os.File) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("node", cli, "mock",
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--multiprocess=false",
		s.SpecPath,
	)
	cmd.Dir = nodeDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := testenv.StartProcess(cmd)
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	err = proc.WaitFor(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		proc.Stop(5 * time.Second)
		return fmt.Errorf("prism on %s: %w", addr, err)
	}
	s.proc = proc
	s.URL = "http://" + addr
	return nil
}

// Stop stops the node process. It is safe to call more than once; Start
// registers it as a cleanup.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop(5 * time.Second)
	}
}

// Log returns Prism's output so far: one line per request with the
// violations it found.
func (s *Server) Log() string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return ""
	}
	return string(data)
}
