package web

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

// Every answer — the page, its files, a 404, a 405 — carries the strict
// policy and the other security headers.
func TestSecurityHeaders(t *testing.T) {
	h, err := New(Options{Homeserver: "http://127.0.0.1:8008"})
	require.NoError(t, err)
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{http.MethodGet, Prefix, http.StatusOK, "text/html; charset=utf-8"},
		{http.MethodHead, Prefix, http.StatusOK, "text/html; charset=utf-8"},
		{http.MethodGet, Prefix + "app.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{http.MethodGet, Prefix + "qr.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{http.MethodGet, Prefix + "style.css", http.StatusOK, "text/css; charset=utf-8"},
		{http.MethodGet, Prefix + "favicon.svg", http.StatusOK, "image/svg+xml"},
		{http.MethodGet, Prefix + "index.html", http.StatusNotFound, "text/plain; charset=utf-8"},
		{http.MethodGet, Prefix + "../provision/v1/whoami", http.StatusNotFound, "text/plain; charset=utf-8"},
		{http.MethodGet, Prefix + "static/app.js", http.StatusNotFound, "text/plain; charset=utf-8"},
		{http.MethodPost, Prefix, http.StatusMethodNotAllowed, "text/plain; charset=utf-8"},
	} {
		resp := get(t, h, tc.method, tc.path)
		name := tc.method + " " + tc.path
		require.Equal(t, tc.status, resp.StatusCode, name)
		require.Equal(t, tc.ctype, resp.Header.Get("Content-Type"), name)
		require.Equal(t, "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
			"connect-src 'self' http://127.0.0.1:8008; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
			resp.Header.Get("Content-Security-Policy"), name)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), name)
		require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"), name)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), name)
		require.Equal(t, "same-origin", resp.Header.Get("Cross-Origin-Opener-Policy"), name)
		if tc.status == http.StatusMethodNotAllowed {
			require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		}
		if tc.method == http.MethodHead {
			body, _ := io.ReadAll(resp.Body)
			require.Empty(t, body)
		}
	}
	require.Equal(t, "no-store", get(t, h, http.MethodGet, Prefix).Header.Get("Cache-Control"), "the page is never cached")
}

// The homeserver's origin, and only it, is added to connect-src, and the
// page learns its URL; without one the page connects to its own origin
// only and offers the pasted token alone.
func TestHomeserverInPolicy(t *testing.T) {
	for _, tc := range []struct {
		homeserver, connect, meta string
	}{
		{"", "connect-src 'self';", `content=""`},
		{"https://matrix.example.org", "connect-src 'self' https://matrix.example.org;", `content="https://matrix.example.org"`},
		{"https://matrix.example.org:8448/", "connect-src 'self' https://matrix.example.org:8448;", `content="https://matrix.example.org:8448"`},
		{"http://localhost:8008/base/", "connect-src 'self' http://localhost:8008;", `content="http://localhost:8008/base"`},
		{`https://example.org/"><script>`, "connect-src 'self' https://example.org;", `content="https://example.org/%22%3E%3Cscript%3E"`},
	} {
		h, err := New(Options{Homeserver: tc.homeserver})
		require.NoError(t, err, tc.homeserver)
		resp := get(t, h, http.MethodGet, Prefix)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), tc.connect, tc.homeserver)
		body, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(body), `<meta name="switchboard-homeserver" `+tc.meta+`>`, tc.homeserver)
	}
}

func TestBadHomeserver(t *testing.T) {
	for _, raw := range []string{"localhost:8008", "ftp://example.org", "https://", "https://u:p@example.org", "https://example.org/?q=1", "://x", "https://example.org/#frag"} {
		_, err := New(Options{Homeserver: raw})
		require.True(t, errors.Is(err, ErrHomeserverURL), "%q: %v", raw, err)
	}
}

// The page has no inline script, inline style or event handler attribute
// (the policy would block them), and references nothing beyond its own
// files: no absolute URL in any src or href.
func TestNoInlineCodeNoExternalAssets(t *testing.T) {
	index, err := fs.ReadFile(static, "static/index.html")
	require.NoError(t, err)
	html := string(index)
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		require.Contains(t, m, ` src="`, "inline script: %s", m)
	}
	require.NotRegexp(t, `<style`, html)
	require.NotRegexp(t, `\sstyle=`, html)
	require.NotRegexp(t, `\son[a-z]+=`, html)
	require.NotContains(t, html, "javascript:")
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(static, p)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?([^"' >]+)`).FindAllStringSubmatch(string(body), -1) {
			require.False(t, strings.Contains(m[2], "//"), "%s references %s", p, m[2])
		}
		require.NotRegexp(t, `@import|url\(\s*["']?(https?:)?//`, string(body), p)
		require.NotContains(t, string(body), "innerHTML", "%s: text goes in with textContent", p)
		require.NotContains(t, string(body), "eval(", p)
		return nil
	})
	require.NoError(t, err)
}
