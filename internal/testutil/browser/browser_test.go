package browser

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:8080/x", true},
		{"http://127.5.6.7/", true},
		{"http://[::1]:9/", true},
		{"http://localhost:1/", true},
		{"ws://127.0.0.1:1/ws", true},
		{"data:image/png;base64,AAAA", true},
		{"blob:http://127.0.0.1:1/uuid", true},
		{"about:blank", true},
		{"https://example.org/", false},
		{"http://10.0.0.1/", false},
		{"http://localhost.example.org/", false},
		{"http://127.0.0.1.nip.io/", false},
		{"ftp://127.0.0.1/", false},
		{"chrome-extension://abc/", false},
		{"::", false},
	} {
		require.Equal(t, tc.want, Loopback(tc.url), tc.url)
	}
}

// forget marks every problem so far as reported, for tests that provoke
// them on purpose.
func (b *Browser) forget() {
	b.mu.Lock()
	b.reported = len(b.problems)
	b.mu.Unlock()
}

const strictCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'"

// The harness sees what it must fail a test on — an inline script the CSP
// blocks, an image from beyond loopback — and a clean page passes, with a
// screenshot per step.
func TestHarnessCatchesViolations(t *testing.T) {
	b := Start(t)
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", strictCSP)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, "<!doctype html><html lang=en><title>t</title>"+body)
		}
	}
	mux.HandleFunc("/clean", page(`<h1 id=h>clean</h1><script src="/ok.js"></script>`))
	mux.HandleFunc("/ok.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = io.WriteString(w, `document.getElementById('h').textContent = 'ran';`)
	})
	mux.HandleFunc("/inline", page(`<h1>inline</h1><script>document.title='x'</script>`))
	mux.HandleFunc("/outside", page(`<h1>outside</h1><img alt="" src="http://192.0.2.1/pixel.png">`))
	mux.HandleFunc("/error", page(`<h1>error</h1><script src="/err.js"></script>`))
	mux.HandleFunc("/err.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = io.WriteString(w, `console.error('boom');`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b.Step("clean", chromedp.Navigate(srv.URL+"/clean"))
	require.Equal(t, "ran", b.WaitText("#h", "ran"))
	require.Empty(t, b.Problems())

	for _, tc := range []struct{ path, want string }{
		{"/inline", "script-src"},
		{"/outside", "beyond loopback"},
		{"/error", "console.error: boom"},
	} {
		require.NoError(t, chromedp.Do(b.Context(), chromedp.Navigate(srv.URL+tc.path)))
		require.Eventually(t, func() bool {
			return strings.Contains(strings.Join(b.Problems(), "\n"), tc.want)
		}, StepTimeout, 50*time.Millisecond, "%s: no problem containing %q in %q", tc.path, tc.want, b.Problems())
		b.forget()
	}

	shots, err := filepath.Glob(filepath.Join(b.Artifacts, "*.png"))
	require.NoError(t, err)
	require.NotEmpty(t, shots)
	data, err := os.ReadFile(shots[0])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), "\x89PNG"), "screenshots are PNG")
}
