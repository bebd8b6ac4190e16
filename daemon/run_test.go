package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/config"
)

// testDaemon is a daemon run in-process on a config in a temporary
// directory, with no homeserver behind it.
type testDaemon struct {
	dir, addr string
	cfg       *config.Config
	logPath   string
}

// writeConfig creates dir/config.yaml as a first run would, then applies
// edit to its text (nil: none).
func writeConfig(t *testing.T, dir string, edit func(string) string) string {
	t.Helper()
	path := filepath.Join(dir, "config.yaml")
	_, _, err := config.LoadOrCreate(path, nil)
	require.NoError(t, err)
	if edit != nil {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, []byte(edit(string(data))), 0o600))
	}
	return path
}

// testEnv points the daemon at a local port and a homeserver that is not
// there; extra overrides follow.
func testEnv(extra map[string]string) config.LookupFunc {
	m := map[string]string{
		"SWITCHBOARD_APPSERVICE_LISTEN":      "127.0.0.1:0",
		"SWITCHBOARD_HOMESERVER_ADDRESS":     "http://127.0.0.1:9/internal-hs",
		"SWITCHBOARD_LOGGING_FORMAT":         "json",
		"SWITCHBOARD_ENCRYPTION_ALLOW":       "false",
		"SWITCHBOARD_DELIVERY_POLL_INTERVAL": "100ms",
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// startTestDaemon runs the daemon on the config at path until the test
// ends.
func startTestDaemon(t *testing.T, path string, env config.LookupFunc) *testDaemon {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), "log")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: path, Version: "test", Env: env, Stdout: io.Discard, LogOutput: logFile,
			Ready: func(a net.Addr) { ready <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = logFile.Close()
	})
	select {
	case a := <-ready:
		cfg, err := config.Load(path, env)
		require.NoError(t, err)
		return &testDaemon{dir: filepath.Dir(path), addr: a.String(), cfg: cfg, logPath: logFile.Name()}
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start")
	}
	return nil
}

func (d *testDaemon) logs(t *testing.T) string {
	data, err := os.ReadFile(d.logPath)
	require.NoError(t, err)
	return string(data)
}

// TestHealthDetailsNeedAToken: /health tells anyone the state of each
// component, and only a caller with the as_token or hs_token (Bearer) the
// messages, version and queue depth: the messages can carry internal URLs
// and error text.
func TestHealthDetailsNeedAToken(t *testing.T) {
	path := writeConfig(t, t.TempDir(), nil)
	d := startTestDaemon(t, path, testEnv(nil))
	get := func(auth string) (map[string]any, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+"/health", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out))
		return out, string(raw)
	}
	// The homeserver check fails first; wait until /health shows it.
	require.Eventually(t, func() bool {
		rep, _ := get("Bearer " + d.cfg.Appservice.ASToken)
		hs, _ := rep["homeserver"].(map[string]any)
		return hs["state"] == "down"
	}, 20*time.Second, 50*time.Millisecond)

	for _, tc := range []struct {
		name, auth string
		details    bool
	}{
		{"no token", "", false},
		{"wrong token", "Bearer " + strings.Repeat("x", 64), false},
		{"token without Bearer", d.cfg.Appservice.ASToken, false},
		{"as_token", "Bearer " + d.cfg.Appservice.ASToken, true},
		{"hs_token", "Bearer " + d.cfg.Appservice.HSToken, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, raw := get(tc.auth)
			require.Contains(t, []any{"ok", "degraded", "down"}, rep["status"])
			require.Equal(t, "degraded", rep["status"], "no homeserver")
			for _, comp := range []string{"database", "homeserver"} {
				require.Contains(t, rep[comp], "state", comp)
			}
			require.Contains(t, rep["connectors"], "matrix")
			if tc.details {
				require.Equal(t, "test", rep["version"])
				require.Contains(t, rep, "queue_depth")
				require.Contains(t, raw, `"message"`)
				return
			}
			require.NotContains(t, rep, "version")
			require.NotContains(t, rep, "queue_depth")
			require.NotContains(t, raw, `"message"`)
			require.NotContains(t, raw, "127.0.0.1")
			require.NotContains(t, raw, "internal-hs")
			require.NotContains(t, raw, "http")
		})
	}
}

// TestStartWarnings: "*": admin and a config or database that other users
// can read each give a warning naming the key or file at start; the
// daemon starts all the same. A private setup gives none.
func TestStartWarnings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		admin   bool
		cfgMode os.FileMode
		dbMode  os.FileMode
		want    []string
	}{
		{"private", false, 0o600, 0, nil},
		{"star admin", true, 0o600, 0, []string{`permissions[\"*\"]`}},
		{"readable config", false, 0o644, 0, []string{"config.yaml", "chmod 600"}},
		{"readable database", false, 0o600, 0o644, []string{"switchboard.db", "chmod 600"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeConfig(t, dir, func(s string) string {
				if tc.admin {
					s = strings.Replace(s, `"*": relay`, `"*": admin`, 1)
				}
				return s
			})
			require.NoError(t, os.Chmod(path, tc.cfgMode))
			if tc.dbMode != 0 {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "switchboard.db"), nil, tc.dbMode))
			}
			d := startTestDaemon(t, path, testEnv(nil))
			logs := d.logs(t)
			for _, w := range tc.want {
				require.Contains(t, logs, w)
			}
			if tc.want == nil {
				require.NotContains(t, logs, `"level":"warn","key"`)
				require.NotContains(t, logs, "chmod 600")
			}
			if tc.dbMode == 0 {
				st, err := os.Stat(filepath.Join(dir, "switchboard.db"))
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the database is created private")
			}
		})
	}
}
