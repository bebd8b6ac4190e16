package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// txnProxy stands between Dendrite and the daemon under measurement and
// notes, per message body, when the homeserver's transaction carrying it
// arrived and when the daemon acknowledged that transaction. It splits the
// latency run's figure into the homeserver's share and the bridge's.
type txnProxy struct {
	mu      sync.Mutex
	arrived map[string]time.Time // body -> transaction arrival
	acked   map[string]time.Time // body -> transaction acknowledged
	srv     *httptest.Server
}

// startTxnProxy forwards everything to target (host:port).
func startTxnProxy(t *testing.T, target string) *txnProxy {
	t.Helper()
	p := &txnProxy{arrived: map[string]time.Time{}, acked: map[string]time.Time{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var txn struct {
			Events []struct {
				Content struct {
					Body string `json:"body"`
				} `json:"content"`
			} `json:"events"`
		}
		_ = json.Unmarshal(body, &txn)
		rp.ServeHTTP(w, r)
		done := time.Now()
		p.mu.Lock()
		for _, ev := range txn.Events {
			if ev.Content.Body != "" {
				if _, seen := p.arrived[ev.Content.Body]; !seen {
					p.arrived[ev.Content.Body], p.acked[ev.Content.Body] = at, done
				}
			}
		}
		p.mu.Unlock()
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// times returns when the transaction carrying body arrived and was
// acknowledged (zero when it never came through the proxy).
func (p *txnProxy) times(body string) (arrived, acked time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arrived[body], p.acked[body]
}

var registrationURL = regexp.MustCompile(`(?m)^url: .*$`)

// pointRegistration makes the registration at path send transactions to
// the proxy instead of the daemon.
func (p *txnProxy) pointRegistration(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, registrationURL.Match(data), "no url in %s", path)
	require.NoError(t, os.WriteFile(path, registrationURL.ReplaceAll(data, []byte("url: "+p.srv.URL)), 0o600))
}
