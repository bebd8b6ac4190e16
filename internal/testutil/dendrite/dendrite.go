// Package dendrite starts a real Dendrite homeserver on the loopback
// interface for switchboard's integration tests.
//
// Each Server gets its own temporary directory with a fresh signing key, a
// config made by Dendrite's own generate-config -ci (rate limits off, bcrypt
// cost 4, in-memory JetStream, no outside key servers), federation disabled
// and the given appservice registrations loaded. The binaries are installed
// once with `go install` (see BinDir); when that is impossible the tests
// skip, unless SWITCHBOARD_REQUIRE_DENDRITE=1 makes it an error.
package dendrite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// ReadyTimeout bounds how long Start waits for /_matrix/client/versions to
// answer.
const ReadyTimeout = 60 * time.Second

// logTailLines is how much of Dendrite's log a failing test prints.
const logTailLines = 80

// Options configure a Server. The zero value is a server named localhost
// with no appservices.
type Options struct {
	// ServerName is the homeserver's server name; "localhost" when empty.
	ServerName string
	// Registrations are appservice registration files to load. Relative
	// paths are made absolute against the test's working directory.
	Registrations []string
	// LogLevel is Dendrite's log level (trace, debug, info, warn, error);
	// "info" when empty.
	LogLevel string
	// Configure, when set, may change the parsed dendrite.yaml after the
	// harness has made its own edits and before it is written.
	Configure func(cfg map[string]any)
}

// Server is a running (or stopped) Dendrite process and its data directory.
type Server struct {
	// URL is the client-server API base URL, like http://127.0.0.1:PORT.
	URL string
	// ServerName is the homeserver's server name, the part after the
	// colon in user IDs.
	ServerName string
	// Dir is the data directory holding the config, key, SQLite databases
	// and the log.
	Dir string
	// ConfigPath is the dendrite.yaml that the process runs with.
	ConfigPath string
	// LogPath is the file that collects Dendrite's standard output and
	// error, across restarts.
	LogPath string

	bin  string
	port int
	http *http.Client

	mu   sync.Mutex
	proc *testenv.Process
	log  *os.File
}

// Start starts a Dendrite for t and stops it when t ends. It skips t when
// Dendrite cannot be installed (fails it if SWITCHBOARD_REQUIRE_DENDRITE=1)
// and fails t, printing the log tail, when Dendrite does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := TryStart(t, opts)
	if err != nil {
		if s != nil {
			t.Fatalf("dendrite: %v\n--- tail of %s ---\n%s", err, s.LogPath, testenv.Tail(s.LogPath, logTailLines))
		}
		t.Fatalf("dendrite: %v", err)
	}
	return s
}

// TryStart is Start for tests that expect Dendrite to refuse its
// configuration, such as a bad appservice registration: it returns the
// error instead of failing t. When the process was launched the returned
// Server is non-nil even with an error, so its log can be inspected. A
// missing Dendrite still skips (or fails) t. The process is stopped when t
// ends either way.
func TryStart(t testing.TB, opts Options) (*Server, error) {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		testenv.SkipUnlessRequired(t, EnvRequire, fmt.Sprintf("Dendrite %s is unavailable: %v; %s", Version, err, InstallHint(bin)))
	}
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	s := &Server{
		ServerName: opts.ServerName,
		Dir:        t.TempDir(),
		bin:        bin,
		http:       &http.Client{Timeout: 30 * time.Second},
	}
	s.ConfigPath = filepath.Join(s.Dir, "dendrite.yaml")
	s.LogPath = filepath.Join(s.Dir, "dendrite.log")
	if err := s.configure(opts); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("--- tail of Dendrite log %s ---\n%s", s.LogPath, testenv.Tail(s.LogPath, logTailLines))
		}
		s.closeLog()
	})
	if err := s.launch(false); err != nil {
		return s, err
	}
	return s, nil
}

func (s *Server) configure(opts Options) error {
	keyPath := filepath.Join(s.Dir, "matrix_key.pem")
	if out, err := exec.Command(filepath.Join(s.bin, "generate-keys"), "--private-key", keyPath).CombinedOutput(); err != nil {
		return fmt.Errorf("generate-keys: %w\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(s.bin, "generate-config"), "-ci", "-dir", s.Dir, "-server", opts.ServerName).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return fmt.Errorf("generate-config: %w\n%s", err, exitErr.Stderr)
		}
		return fmt.Errorf("generate-config: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return fmt.Errorf("parse generated config: %w", err)
	}
	registrations := make([]any, 0, len(opts.Registrations))
	for _, r := range opts.Registrations {
		abs, err := filepath.Abs(r)
		if err != nil {
			return fmt.Errorf("registration path %q: %w", r, err)
		}
		registrations = append(registrations, abs)
	}
	global := section(cfg, "global")
	global["disable_federation"] = true
	global["private_key"] = keyPath
	// No outside identity servers: tests have no network.
	global["trusted_third_party_id_servers"] = []any{}
	section(cfg, "app_service_api")["config_files"] = registrations
	// generate-config -ci logs at trace level; keep the file readable.
	cfg["logging"] = []any{map[string]any{"type": "std", "level": opts.LogLevel}}
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.WriteFile(s.ConfigPath, data, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// section returns cfg[name] as a map, creating it when absent.
func section(cfg map[string]any, name string) map[string]any {
	if m, ok := cfg[name].(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	cfg[name] = m
	return m
}

// launch starts the process and waits until it answers. With samePort it
// first tries the port used before, so that URL stays valid across Restart.
func (s *Server) launch(samePort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		s.log = f
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := s.port
		if !samePort || attempt >= 3 {
			p, err := testenv.FreePort()
			if err != nil {
				return err
			}
			port = p
		}
		err := s.launchOn(port)
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return lastErr
}

var errAddrInUse = errors.New("address already in use")

func (s *Server) launchOn(port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	fmt.Fprintf(s.log, "--- switchboard testutil: starting dendrite on %s at %s ---\n", addr, time.Now().Format(time.RFC3339Nano))
	logStart, _ := s.log.Seek(0, 2)
	cmd := exec.Command(filepath.Join(s.bin, "dendrite"),
		"-config", s.ConfigPath,
		"-http-bind-address", addr,
		"-really-enable-open-registration",
	)
	cmd.Dir = s.Dir
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	proc, err := testenv.StartProcess(cmd)
	if err != nil {
		return fmt.Errorf("start dendrite: %w", err)
	}
	url := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	err = proc.WaitFor(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		return s.checkVersions(ctx, url)
	})
	if err != nil {
		proc.Stop(5 * time.Second)
		if logSince(s.LogPath, logStart, "address already in use") {
			return fmt.Errorf("%w: %s", errAddrInUse, addr)
		}
		return fmt.Errorf("dendrite on %s: %w", addr, err)
	}
	s.proc = proc
	s.port = port
	s.URL = url
	return nil
}

// logSince reports whether the log, from offset on, contains substr.
func logSince(path string, offset int64, substr string) bool {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return false
	}
	return strings.Contains(string(data[offset:]), substr)
}

func (s *Server) checkVersions(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_matrix/client/versions", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_matrix/client/versions: %s", resp.Status)
	}
	return nil
}

// Stop stops the process (SIGTERM, then SIGKILL after 10 s). The data
// directory stays until the test ends, so Restart can start it again. Stop
// is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop(10 * time.Second)
		s.proc = nil
	}
}

func (s *Server) closeLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

// Restart stops the process if it runs and starts it again with the same
// config and data directory. It tries the same port first, so URL normally
// stays the same; if that port has been taken meanwhile, URL changes.
// Accounts, rooms and events live in SQLite under Dir and survive; JetStream
// runs in memory (generate-config -ci), so anything still queued inside
// Dendrite at Stop (such as an undelivered appservice transaction) is lost.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(true); err != nil {
		t.Fatalf("dendrite: restart: %v\n--- tail of %s ---\n%s", err, s.LogPath, testenv.Tail(s.LogPath, logTailLines))
	}
}

// Running reports whether the process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	exited, _ := s.proc.Exited()
	return !exited
}

// UserID returns the full Matrix user ID for localpart on this server.
func (s *Server) UserID(localpart string) string {
	return "@" + localpart + ":" + s.ServerName
}

// Log returns the whole log collected so far.
func (s *Server) Log() string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return ""
	}
	return string(data)
}

// AppServiceLogErrors returns the log lines at error level or worse
// (error, fatal, panic) that are about appservices: those mentioning
// "appservice", "application service", "app_service" or the config file
// being invalid. A registration that Dendrite accepted and served yields
// none.
func (s *Server) AppServiceLogErrors() []string {
	var found []string
	for _, line := range strings.Split(s.Log(), "\n") {
		lower := strings.ToLower(line)
		if !strings.Contains(lower, "level=error") && !strings.Contains(lower, "level=fatal") && !strings.Contains(lower, "level=panic") {
			continue
		}
		for _, key := range []string{"appservice", "application service", "app_service", "invalid config file"} {
			if strings.Contains(lower, key) {
				found = append(found, line)
				break
			}
		}
	}
	return found
}
