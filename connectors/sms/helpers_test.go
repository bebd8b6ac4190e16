package sms_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "0123456789abcdef0123456789abcdef"
	publicURL  = "https://bridge.example.org"
	pool1      = "+14155550101"
	pool2      = "+14155550102"
	contactA   = "+14155550100"
	secret     = "test-identity-secret-0123456789abcdef"

	netMatrix bridge.NetworkID = "matrix"
)

// fakeTwilio records Messages.json requests and answers like Twilio.
type fakeTwilio struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []url.Values
	at       []time.Time
	// fail, when set, answers the next requests with this status and body.
	failStatus int
	failBody   string
	// failNth answers only the request with this index (from 0) with fail*.
	failNth int
	// failFirst, when above 0, answers the first failFirst requests with
	// fail* instead.
	failFirst int
	n         int
}

func newFakeTwilio(t testing.TB) *fakeTwilio {
	f := &fakeTwilio{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != accountSID || pass != authToken {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":20003,"status":401,"message":"Authenticate"}`)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/Media/") {
			w.Header().Set("Content-Type", "image/png")
			_, _ = io.WriteString(w, "png-bytes")
			return
		}
		if r.URL.Path != "/2010-04-01/Accounts/"+accountSID+"/Messages.json" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r.PostForm)
		f.at = append(f.at, time.Now())
		failing := f.failNth < 0 || f.failNth == len(f.requests)-1
		if f.failFirst > 0 {
			failing = len(f.requests) <= f.failFirst
		}
		if f.failStatus != 0 && failing {
			if f.failStatus == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			w.WriteHeader(f.failStatus)
			_, _ = io.WriteString(w, f.failBody)
			return
		}
		f.n++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": fmt.Sprintf("SM%032x", f.n), "status": "queued"})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// times returns when each request arrived.
func (f *fakeTwilio) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

func (f *fakeTwilio) fail(status int, body string) {
	f.mu.Lock()
	f.failStatus, f.failBody, f.failNth = status, body, -1
	f.mu.Unlock()
}

func (f *fakeTwilio) failOnly(nth, status int, body string) {
	f.mu.Lock()
	f.failStatus, f.failBody, f.failNth = status, body, nth
	f.mu.Unlock()
}

// failFirstN answers the first n requests with status and body.
func (f *fakeTwilio) failFirstN(n, status int, body string) {
	f.mu.Lock()
	f.failStatus, f.failBody, f.failFirst = status, body, n
	f.mu.Unlock()
}

func (f *fakeTwilio) Requests() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.requests...)
}

func (f *fakeTwilio) waitRequests(t testing.TB, n int) []url.Values {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := f.Requests(); len(r) >= n {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fake Twilio got %d requests, want %d", len(f.Requests()), n)
	return nil
}

// env is a router with the SMS connector and a loopback "matrix" leg on
// SQLite.
type env struct {
	t      testing.TB
	router *bridge.Router
	sms    *sms.Connector
	mx     *bridgetest.Loopback
	twilio *fakeTwilio
	mux    *http.ServeMux
	logs   *testenv.SyncBuffer
	dbPath string
	// postgres runs the env on a fresh PostgreSQL database (pgtest).
	postgres bool
	reg      *prometheus.Registry
	db       *dbutil.Database
	// spoolPath, when set before start, is given to SetSpool.
	spoolPath string
	// dbFile, when set before start, is the SQLite file to open instead of
	// a fresh one (the fixture tests).
	dbFile string

	mu       sync.Mutex
	statuses []statusCall
	shared   [][]bridge.ConversationID
}

type statusCall struct {
	conv  bridge.ConversationID
	msg   bridge.MessageID
	state string
	code  string
}

type envOpt func(*config.Config)

// connectorConfig is what the daemon gives the connector of cfg.
func connectorConfig(cfg *config.Config) sms.Config {
	intervals := map[string]time.Duration{}
	for number, d := range cfg.Safety.SMSNumberIntervals {
		intervals[number] = d.Std()
	}
	return sms.Config{
		SMS: cfg.SMS, Secret: cfg.Identity.Secret, MetadataRetention: cfg.Retention.Metadata.Std(),
		Pacing:           sms.Pacing{SegmentInterval: cfg.Safety.SMSSegmentInterval.Std(), NumberIntervals: intervals},
		HighCostPrefixes: cfg.Safety.HighCostPrefixes,
	}
}

func testConfig(apiURL string) *config.Config {
	cfg := &config.Config{}
	cfg.Identity.Secret = secret
	cfg.SMS = config.SMS{
		Enabled:   true,
		PublicURL: publicURL,
		Twilio: config.Twilio{
			AccountSID: accountSID, AuthToken: authToken, APIURL: apiURL,
			Numbers: []string{pool1, pool2},
		},
		AllowedCountries: []string{"US", "CA"},
	}
	return cfg
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, twilio: newFakeTwilio(t), logs: &testenv.SyncBuffer{}, mx: bridgetest.NewLoopback(netMatrix), reg: prometheus.NewRegistry()}
	return e.start(e.twilio.srv.URL, opts...)
}

// dumpLogsOnFailure prints the connector's and router's log of a failed test.
func (e *env) dumpLogsOnFailure() {
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("--- logs ---\n%s", e.logs.String())
		}
	})
}

func (e *env) start(apiURL string, opts ...envOpt) *env {
	t := e.t
	cfg := testConfig(apiURL)
	for _, o := range opts {
		o(cfg)
	}
	e.dumpLogsOnFailure()
	log := zerolog.New(e.logs).Level(zerolog.DebugLevel)
	dbo := database.Options{Type: database.TypeSQLite, URI: filepath.Join(t.TempDir(), "switchboard.db")}
	if e.dbFile != "" {
		dbo.URI = e.dbFile
	}
	if e.postgres {
		dbo = dbtest.Postgres(t)
	} else {
		e.dbPath = dbo.URI
	}
	db, err := database.Open(context.Background(), dbo, log)
	require.NoError(t, err)
	c, err := sms.New(connectorConfig(cfg), db, log)
	require.NoError(t, err)
	require.NoError(t, c.RegisterMetrics(e.reg))
	if e.spoolPath != "" {
		c.SetSpool(e.spoolPath)
	}
	c.SetHooks(sms.Hooks{
		OnStatus: func(_ context.Context, conv bridge.ConversationID, msg bridge.MessageID, state, code string) {
			e.mu.Lock()
			e.statuses = append(e.statuses, statusCall{conv, msg, state, code})
			e.mu.Unlock()
		},
		OnPoolShared: func(_ context.Context, _ bridge.ConversationID, others []bridge.ConversationID) {
			e.mu.Lock()
			e.shared = append(e.shared, others)
			e.mu.Unlock()
		},
		IsGroup: func(context.Context, bridge.ConversationID) bool { return false },
	})
	r, err := bridge.New(bridge.Options{
		DB: db, Secret: []byte(secret), Log: log,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3,
		PollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, r.Register(e.mx))
	require.NoError(t, r.Register(c))
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() {
		_ = r.Stop(context.Background())
		_ = db.Close()
	})
	e.router, e.sms, e.db = r, c, db
	e.mux = http.NewServeMux()
	for pattern, h := range c.Routes() {
		e.mux.Handle(pattern, h)
	}
	return e
}

// conversation creates a conversation between a new loopback room and the
// contact, and returns it with its two legs.
func (e *env) conversation(contact, room string) (bridge.ConversationID, bridge.Leg, bridge.Leg) {
	e.t.Helper()
	ctx := context.Background()
	mxLeg := bridge.Leg{Network: netMatrix, Chat: bridge.ChatID(room)}
	conv, err := e.router.CreateConversation(ctx, mxLeg)
	require.NoError(e.t, err)
	chat, err := e.sms.ChatFor(ctx, contact, conv)
	require.NoError(e.t, err)
	smsLeg := bridge.Leg{Network: bridge.NetworkSMS, Chat: chat}
	require.NoError(e.t, e.router.AddLeg(ctx, conv, smsLeg))
	return conv, mxLeg, smsLeg
}

// sendFromMatrix injects a message on the loopback leg.
func (e *env) sendFromMatrix(leg bridge.Leg, id, body string) {
	e.t.Helper()
	require.NoError(e.t, e.mx.Receive(context.Background(), &bridge.Event{
		Kind: bridge.KindMessage, Source: leg, SourceID: bridge.RemoteID(id),
		Sender:  bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"},
		Content: &bridge.Content{Type: bridge.MsgText, Body: body},
	}))
}

// sign returns Twilio's X-Twilio-Signature for a form posted to path.
func sign(path string, form url.Values) string {
	params := make(map[string]string, len(form))
	for k := range form {
		params[k] = form.Get(k)
	}
	// RequestValidator has no exported signer: compute Twilio's scheme
	// (HMAC-SHA1 of the URL followed by the sorted key+value pairs) and
	// check it with the validator so the helper cannot drift from it.
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := publicURL + path
	for _, k := range keys {
		data += k + params[k]
	}
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(data))
	sig := base64.StdEncoding.EncodeToString(h.Sum(nil))
	v := client.NewRequestValidator(authToken)
	if !v.Validate(publicURL+path, params, sig) {
		panic("test signer disagrees with twilio-go's RequestValidator")
	}
	return sig
}

// post sends a webhook to the connector's routes.
func (e *env) post(path string, form url.Values, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// postRaw sends an already encoded webhook body.
func (e *env) postRaw(path, body, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

func inbound(sid, from, to, body string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {accountSID},
		"From": {from}, "To": {to}, "Body": {body}, "NumMedia": {"0"},
	}
}

func sid(n int) string { return fmt.Sprintf("SM%032x", 0xabc000+n) }
