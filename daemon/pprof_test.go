package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPprofIsOffByDefaultAndNeedsAToken: the profiler is not served unless
// appservice.pprof is on, and then only to a caller with the as_token or
// hs_token: a profile shows what the bridge is doing and costs CPU.
func TestPprofIsOffByDefaultAndNeedsAToken(t *testing.T) {
	get := func(d *testDaemon, path, auth string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	off := startTestDaemon(t, writeConfig(t, t.TempDir(), nil), testEnv(nil))
	status, _ := get(off, "/debug/pprof/", "Bearer "+off.cfg.Appservice.ASToken)
	require.Equal(t, http.StatusNotFound, status, "pprof served without appservice.pprof")

	on := startTestDaemon(t, writeConfig(t, t.TempDir(), nil), testEnv(map[string]string{"SWITCHBOARD_APPSERVICE_PPROF": "true"}))
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"no token", "/debug/pprof/", "", http.StatusUnauthorized},
		{"wrong token", "/debug/pprof/heap", "Bearer " + strings.Repeat("x", 64), http.StatusUnauthorized},
		{"token without Bearer", "/debug/pprof/heap", on.cfg.Appservice.ASToken, http.StatusUnauthorized},
		{"as_token, index", "/debug/pprof/", "Bearer " + on.cfg.Appservice.ASToken, http.StatusOK},
		{"hs_token, heap", "/debug/pprof/heap?debug=1", "Bearer " + on.cfg.Appservice.HSToken, http.StatusOK},
		{"hs_token, cpu", "/debug/pprof/profile?seconds=1", "Bearer " + on.cfg.Appservice.HSToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(on, tc.path, tc.auth)
			require.Equal(t, tc.want, status)
			if tc.want == http.StatusOK {
				require.NotEmpty(t, body)
			} else {
				require.NotContains(t, body, "goroutine")
			}
		})
	}
}
