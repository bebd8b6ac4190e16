package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadTwilio is the load tool's fake Twilio Messages API: it answers as
// Twilio does (201 and a message resource) and records, for every body
// the load tool sent ("<run>/<seq>"), when it first arrived, how often,
// and whether it came after a later message to the same number.
type loadTwilio struct {
	mu       sync.Mutex
	n        int
	first    map[string]time.Time // body -> first arrival
	count    map[string]int       // body -> arrivals
	lastSeq  map[string]int       // run + To -> highest seq seen
	outOrder map[string]int       // run -> messages that arrived after a later one to the same number
}

func newLoadTwilio() *loadTwilio {
	return &loadTwilio{first: map[string]time.Time{}, count: map[string]int{}, lastSeq: map[string]int{}, outOrder: map[string]int{}}
}

func (f *loadTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+e2eSID+"/Messages.json" {
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != e2eSID || pass != e2eToken {
		http.Error(w, `{"code":20003,"message":"auth","status":401}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"code":21602,"message":"bad form","status":400}`, http.StatusBadRequest)
		return
	}
	body, to := r.PostForm.Get("Body"), r.PostForm.Get("To")
	f.mu.Lock()
	f.n++
	n := f.n
	f.count[body]++
	if f.count[body] == 1 {
		f.first[body] = now
	}
	if run, seq, ok := parseLoadBody(body); ok {
		key := run + " " + to
		if last, seen := f.lastSeq[key]; seen && seq < last {
			f.outOrder[run]++
		} else {
			f.lastSeq[key] = seq
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"sid":"SM%032d","status":"queued","to":%q,"from":%q,"num_segments":"1","account_sid":%q}`,
		n, to, r.PostForm.Get("From"), e2eSID)
}

// loadBody is the SMS body of message seq of a run.
func loadBody(run string, seq int) string { return run + "/" + strconv.Itoa(seq) }

func parseLoadBody(body string) (run string, seq int, ok bool) {
	run, s, ok := strings.Cut(body, "/")
	if !ok {
		return "", 0, false
	}
	seq, err := strconv.Atoi(s)
	return run, seq, err == nil
}

// arrived reports how many of the run's n bodies have arrived at least
// once.
func (f *loadTwilio) arrived(run string, n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := 0
	for i := 0; i < n; i++ {
		if f.count[loadBody(run, i)] > 0 {
			got++
		}
	}
	return got
}

// loadTally is what the fake saw of one run of n messages.
type loadTally struct {
	first                 []time.Time // per seq; zero if lost
	last                  time.Time
	lost, dup, outOfOrder int
}

func (f *loadTwilio) tally(run string, n int) loadTally {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := loadTally{first: make([]time.Time, n), outOfOrder: f.outOrder[run]}
	for i := 0; i < n; i++ {
		b := loadBody(run, i)
		switch c := f.count[b]; {
		case c == 0:
			t.lost++
			continue
		case c > 1:
			t.dup += c - 1
		}
		t.first[i] = f.first[b]
		if t.first[i].After(t.last) {
			t.last = t.first[i]
		}
	}
	return t
}

// startLoadTwilio serves f over TLS on loopback and writes the server's
// certificate to dir, for the daemon's SSL_CERT_FILE: the daemon then
// reaches it as it reaches api.twilio.com, through Go's default transport
// with certificate verification. http2 lets the client negotiate HTTP/2
// (as with api.twilio.com); without it the server speaks HTTP/1.1 only.
func startLoadTwilio(t *testing.T, f *loadTwilio, dir string, http2 bool) (apiURL, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(f)
	srv.EnableHTTP2 = http2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(dir, "twilio-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, pemBytes, 0o600))
	return srv.URL, caFile
}
