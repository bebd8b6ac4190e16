package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/provision"
	"github.com/switchboard-bridge/switchboard/safety"
)

const (
	secret    = "provisioning-test-secret-0123456789abcdef"
	idSecret  = "identity-test-secret-0123456789abcdef"
	alice     = "@alice:example.org"
	admin     = "@admin:example.org"
	relayUser = "@relay:example.org"
	stranger  = "@eve:elsewhere.net"
	// Numbers the fake start routing answers differently.
	numStarted   = "+14155550100"
	numLimited   = "+14155550101"
	numSMSOnly   = "+14155550102"
	numNoNetwork = "+14155550103"
	numSuspended = "+14155550104"
	// numLinked is the number alice links.
	numLinked = "+14155550199"
	// portal is alice's bridged room.
	portal = "!portal:example.org"
)

// numbersUsed are every number the tests send; none may come back.
var numbersUsed = []string{numStarted, numLimited, numSMSOnly, numNoNetwork, numSuspended, numLinked}

// codeSink is the network verification codes go by: it keeps them.
type codeSink struct {
	mu   sync.Mutex
	sent []string
}

func (s *codeSink) Network() bridge.NetworkID { return bridge.NetworkSMS }

func (s *codeSink) SendCode(_ context.Context, _ string, text string) error {
	s.mu.Lock()
	s.sent = append(s.sent, text)
	s.mu.Unlock()
	return nil
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

func (s *codeSink) lastCode(t *testing.T) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.sent)
	m := codeRE.FindStringSubmatch(s.sent[len(s.sent)-1])
	require.NotNil(t, m)
	return m[1]
}

// fakeStart is start routing answering by number, like the real one
// answers: a started chat, or the errors the router, safety and identity
// give.
func fakeStart(_ context.Context, req matrix.StartRequest) (*matrix.StartResult, error) {
	switch req.Phone {
	case numStarted:
		return &matrix.StartResult{Room: id.RoomID(portal), Network: bridge.NetworkWhatsApp, Encrypted: true}, nil
	case numLimited:
		return nil, &safety.LimitError{Limit: safety.LimitNewChats, Max: 3, Per: time.Hour, RetryAfter: 10 * time.Minute}
	case numSMSOnly:
		return nil, identity.ErrSMSNotOptedIn
	case numSuspended:
		return nil, safety.ErrSuspended
	}
	return nil, matrix.ErrNoPhoneNetwork
}

// fakeRetention answers `retention` like the router's for a portal, and
// refuses a zero timer as it does.
func fakeRetention(_ context.Context, req matrix.RetentionRequest) (string, error) {
	if req.Room != portal {
		return "", matrix.ErrNotAPortal
	}
	if req.Arg == "0s" {
		return "", errors.New(`"0s" is not a duration like 30s, 10m, 24h or 7d`)
	}
	return "Messages in this conversation are now kept for " + req.Arg + ".", nil
}

// harness is a provisioning API on a real command registry (identity's
// commands on a real store, WhatsApp's on a real connector with a fake
// device, start and retention with fake routing), served over HTTP.
type harness struct {
	t        *testing.T
	url      string
	reg      *commands.Registry
	store    *identity.Store
	codes    *codeSink
	sessions *waSessions
	wa       *whatsapp.Connector
	logs     *testenv.SyncBuffer
	// bodies holds every answer body, for the no-number canary.
	mu     sync.Mutex
	bodies []string
}

type harnessOpts struct {
	noWhatsApp   bool
	noSecret     bool
	loginTimeout time.Duration
	openID       *http.Client
	hsURL        string
	openIDServer func(string) bool
}

func newHarness(t *testing.T, dbo database.Options, o harnessOpts) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, codes: &codeSink{}, sessions: &waSessions{}, logs: &testenv.SyncBuffer{}}
	log := zerolog.New(h.logs).Level(zerolog.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- logs ---\n%s", h.logs.String())
		}
	})
	db, err := database.Open(ctx, dbo, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	h.store = identity.New(db)
	require.NoError(t, h.store.Upgrade(ctx, log))
	require.NoError(t, h.store.SetSecret([]byte(idSecret)))
	svc, err := identity.NewService(h.store, h.codes)
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Identity.Secret = idSecret
	cfg.WhatsApp.Enabled = true
	if o.loginTimeout > 0 {
		cfg.WhatsApp.LoginTimeout = config.Duration(o.loginTimeout)
	}
	if !o.noWhatsApp {
		h.wa, err = whatsapp.New(whatsapp.Config{WhatsApp: cfg.WhatsApp, Secret: idSecret, MetadataRetention: time.Hour},
			db, log, whatsapp.Options{Sessions: h.sessions})
		require.NoError(t, err)
		h.wa.SetMatrix(waMatrix{})
		r, err := bridge.New(bridge.Options{DB: db, Secret: []byte(idSecret), Log: log,
			RetentionPolicy: &bridge.RetentionPolicy{Default: time.Hour}})
		require.NoError(t, err)
		require.NoError(t, r.Register(bridgetest.NewLoopback(bridge.NetworkMatrix)))
		require.NoError(t, r.Register(h.wa))
		require.NoError(t, r.Start(ctx))
		t.Cleanup(func() { _ = r.Stop(context.Background()) })
	}

	h.reg = commands.New(commands.Options{})
	require.NoError(t, h.reg.Register(matrix.StartCommand(provision.StartRecorder(fakeStart))))
	require.NoError(t, svc.Register(h.reg))
	require.NoError(t, whatsapp.Register(h.reg, h.wa))
	require.NoError(t, h.reg.Register(matrix.RetentionCommand(provision.RetentionRecorder(fakeRetention))))

	perms := config.Permissions{"example.org": config.PermUser, admin: config.PermAdmin, relayUser: config.PermRelay}
	opts := provision.Options{
		Commands:         h.reg,
		Level:            func(user string) commands.Level { return commands.LevelOf(perms.Level(user)) },
		SharedSecret:     map[bool]string{false: secret, true: ""}[o.noSecret],
		HomeserverDomain: "example.org",
		HomeserverURL:    o.hsURL,
		OpenIDServer:     o.openIDServer,
		HTTPClient:       o.openID,
		Identity:         h.store,
		LoginTimeout:     cfg.WhatsApp.LoginTimeout.Std(),
		Networks: func(context.Context) []provision.Network {
			nets := []provision.Network{{ID: "matrix", State: "ok"}}
			if h.wa != nil {
				nets = append(nets, provision.Network{ID: "whatsapp", State: string(h.wa.Health(ctx).State)})
			}
			return nets
		},
		Suspended: func(user string) bool { return false },
		PortalOwner: func(_ context.Context, room string) (string, error) {
			if room == portal {
				return alice, nil
			}
			return "", nil
		},
	}
	if h.wa != nil {
		opts.WhatsApp = waAdapter{h.wa}
	}
	srv := httptest.NewServer(recoverLog(log, provision.New(opts).Handler()))
	t.Cleanup(srv.Close)
	h.url = srv.URL + provision.Prefix
	return h
}

// recoverLog puts the logger in each request's context, as the daemon's
// handler does.
func recoverLog(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(log.WithContext(r.Context())))
	})
}

// waAdapter is the daemon's adapter of the connector, for tests.
type waAdapter struct{ c *whatsapp.Connector }

func (a waAdapter) Login(ctx context.Context, account, phone string, reply func(context.Context, commands.Step)) commands.Step {
	return a.c.Login(ctx, account, phone, reply)
}

func (a waAdapter) LoginStatus(account string) provision.LoginStatus {
	st := a.c.LoginStatus(account)
	return provision.LoginStatus{LoggedIn: st.LoggedIn, State: st.State, Detail: st.Detail, Pending: st.Pending}
}

func (a waAdapter) RelayAvailable() bool { return a.c.RelayAvailable() }
func (a waAdapter) RelayAccount() string { return whatsapp.RelayAccount }

// call is one API request.
type call struct {
	method, path string
	user         string // ?user_id=
	auth         string // the Authorization header ("" none)
	body         any    // JSON-encoded unless a string or []byte
}

// do sends c and returns the status and the decoded answer.
func (h *harness) do(c call) (int, map[string]any) {
	h.t.Helper()
	status, raw := h.raw(c)
	var out map[string]any
	require.NoError(h.t, json.Unmarshal(raw, &out), "answer is a JSON object: %s", raw)
	return status, out
}

func (h *harness) raw(c call) (int, []byte) {
	h.t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(h.t, err)
		body = bytes.NewReader(data)
	}
	u := h.url + c.path
	if c.user != "" {
		u += "?user_id=" + url.QueryEscape(c.user)
		if strings.Contains(c.path, "?") {
			u = h.url + c.path + "&user_id=" + url.QueryEscape(c.user)
		}
	}
	req, err := http.NewRequest(c.method, u, body)
	require.NoError(h.t, err)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	require.Equal(h.t, "application/json", resp.Header.Get("Content-Type"), "%s %s", c.method, c.path)
	require.Equal(h.t, "no-store", resp.Header.Get("Cache-Control"))
	require.Empty(h.t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS: the web page is same-origin")
	h.mu.Lock()
	h.bodies = append(h.bodies, string(raw))
	h.mu.Unlock()
	return resp.StatusCode, raw
}

// as sends c as user with the shared secret.
func (h *harness) as(user string, c call) (int, map[string]any) {
	h.t.Helper()
	c.user, c.auth = user, "Bearer "+secret
	return h.do(c)
}

// requireError checks an error answer's status and errcode.
func requireError(t *testing.T, status int, out map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	require.Equal(t, wantStatus, status, "answer: %v", out)
	require.Equal(t, wantCode, out["errcode"], "answer: %v", out)
	require.NotEmpty(t, out["error"])
}

// requireNoNumbers is the canary: no number the tests used appears in any
// answer, in any written form (the answer's digits, separators dropped,
// do not hold its last 7 digits).
func (h *harness) requireNoNumbers() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(h.t, h.bodies)
	for _, body := range h.bodies {
		digits := regexp.MustCompile(`[^0-9]`).ReplaceAllString(body, "")
		for _, n := range numbersUsed {
			require.NotContains(h.t, digits, n[len(n)-7:], "a number in an answer: %s", body)
		}
	}
}
