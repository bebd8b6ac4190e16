package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/testutil/browser"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/provision"
)

const (
	testUser  = "@alice:example.org"
	testToken = "openid-token-of-alice"
)

// fakeWhatsApp is the provisioning API's view of WhatsApp, driven by the
// test: it starts logins and sends their later steps when told to.
type fakeWhatsApp struct {
	mu       sync.Mutex
	reply    func(context.Context, commands.Step)
	loggedIn bool
	pending  bool
	phones   []string
}

func (f *fakeWhatsApp) Login(_ context.Context, _, phone string, reply func(context.Context, commands.Step)) commands.Step {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply, f.pending = reply, true
	if phone != "" {
		f.phones = append(f.phones, phone)
		return commands.Step{Type: commands.StepCode, Payload: "KX7P-2QWN",
			Text: "Your WhatsApp pairing code is KX7P-2QWN. On your phone: WhatsApp → Settings → Linked devices → Link with phone number."}
	}
	return commands.Step{Type: commands.StepWaiting, Text: "Scan the QR code with WhatsApp on your phone: Settings → Linked devices → Link a device."}
}

// send delivers the login's next step, as WhatsApp's events would.
func (f *fakeWhatsApp) send(step commands.Step) {
	f.mu.Lock()
	reply := f.reply
	if step.Final() {
		f.pending = false
		f.loggedIn = step.Type == commands.StepDone
	}
	f.mu.Unlock()
	reply(context.Background(), step)
}

func (f *fakeWhatsApp) LoginStatus(string) provision.LoginStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loggedIn {
		return provision.LoginStatus{LoggedIn: true, State: whatsapp.StateConnected}
	}
	return provision.LoginStatus{Pending: f.pending}
}

func (f *fakeWhatsApp) RelayAvailable() bool { return false }
func (f *fakeWhatsApp) RelayAccount() string { return whatsapp.RelayAccount }

// serveWithAPI serves the page and the real provisioning API (the bot's
// registry with WhatsApp's commands, an identity store on SQLite, wa as
// WhatsApp) on one loopback origin; OpenID tokens are confirmed by a fake
// homeserver that knows testToken.
func serveWithAPI(t *testing.T, wa provision.WhatsApp) string {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	store := identity.New(db)
	require.NoError(t, store.Upgrade(ctx, zerolog.Nop()))
	require.NoError(t, store.SetSecret([]byte("web-test-secret-0123456789abcdef")))
	reg := commands.New(commands.Options{})
	require.NoError(t, whatsapp.Register(reg, nil))

	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/federation/v1/openid/userinfo" || r.URL.Query().Get("access_token") != testToken {
			http.Error(w, `{"errcode":"M_UNKNOWN_TOKEN"}`, http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"sub": testUser})
	}))
	t.Cleanup(hs.Close)
	api := provision.New(provision.Options{
		Commands:         reg,
		Level:            func(string) commands.Level { return commands.LevelUser },
		HomeserverDomain: "example.org",
		HomeserverURL:    hs.URL,
		Identity:         store,
		WhatsApp:         wa,
		Networks: func(context.Context) []provision.Network {
			return []provision.Network{{ID: "matrix", State: "ok"}, {ID: "whatsapp", State: "ok"}}
		},
		Suspended: func(string) bool { return false },
	})
	page, err := New(Options{})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(Prefix, page)
	mux.Handle(provision.Prefix, api.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + Prefix
}

// decodeQR screenshots the page's QR canvas and reads it with zbarimg.
func decodeQR(t *testing.T, b *browser.Browser, name string) string {
	t.Helper()
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		if testenv.Required(browser.EnvRequire) {
			t.Fatalf("zbarimg is not installed (apt-get install zbar-tools) and %s=1", browser.EnvRequire)
		}
		t.Log("zbarimg is not installed (apt-get install zbar-tools): the QR code is not decoded")
		return ""
	}
	ctx, cancel := context.WithTimeout(b.Context(), browser.StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID("wa-qr-canvas")))
	require.NoError(t, err)
	path := filepath.Join(b.Artifacts, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	out, err := exec.Command(zbar, "--raw", "-q", "-Sbinary", path).Output()
	require.NoError(t, err, "zbarimg could not read %s", path)
	return strings.TrimSuffix(string(out), "\n")
}

// A WhatsApp login through the page and the real provisioning API, in a
// real browser: a pairing code is shown (and the number asked for goes to
// WhatsApp, never back); a QR login shows each QR code WhatsApp sends —
// drawn by the page, readable by a scanner — replacing the last, and once
// paired the page shows the login connected.
func TestWhatsAppLoginInBrowser(t *testing.T) {
	wa := &fakeWhatsApp{}
	page := serveWithAPI(t, wa)
	b := browser.Start(t) // stopped before the servers: its polls end first

	b.Do(chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("tok-token")),
		chromedp.SendKeys(chromedp.ID("tok-user"), testUser),
		chromedp.SendKeys(chromedp.ID("tok-token"), testToken),
		chromedp.Click(chromedp.CSS("#token-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("whatsapp")))
	require.Contains(t, b.Text("#networks-body"), "not logged in")
	b.Screenshot("signed-in")

	// Pairing code: shown; then the login times out.
	b.Do(chromedp.SendKeys(chromedp.ID("wa-phone"), "+1 202 555 0143"), chromedp.Click(chromedp.CSS("#wa-pair-form button")))
	require.Equal(t, "KX7P-2QWN", b.Text("#wa-code"))
	b.Screenshot("pairing-code")
	require.Equal(t, []string{"+12025550143"}, wa.phones, "the number goes to WhatsApp in E.164")
	wa.send(commands.Step{Type: commands.StepError, Text: "The login timed out; try again."})
	b.WaitText("#whatsapp .feedback.bad", "timed out")
	b.Do(chromedp.WaitVisible(chromedp.ID("wa-qr")), chromedp.WaitNotVisible(chromedp.ID("wa-code")))
	b.Screenshot("pairing-timed-out")

	// QR: waiting, then a code, then a newer one, then paired.
	b.Do(chromedp.Click(chromedp.ID("wa-qr")))
	b.WaitText("#wa-step-text", "Scan the QR code")
	first := "2@" + strings.Repeat("QkxhaE5vQ0p", 6) + "," + strings.Repeat("bm9pc2U", 6) + "=," + strings.Repeat("aWRlbnRpdHk", 4) + "=,YWR2LXNlY3JldA=="
	wa.send(commands.Step{Type: commands.StepQR, Payload: first, Text: "Scan this QR code with WhatsApp (Settings → Linked devices → Link a device)."})
	b.Do(chromedp.WaitVisible(chromedp.ID("wa-qr-canvas")))
	b.Screenshot("qr-shown")
	if got := decodeQR(t, b, "qr-first"); got != "" {
		require.Equal(t, first, got, "the page draws the QR code WhatsApp sent")
	}
	second := strings.Replace(first, "2@Qkx", "2@Zmx", 1)
	wa.send(commands.Step{Type: commands.StepQR, Payload: second, Text: "A new QR code: scan this one."})
	b.WaitText("#wa-step-text", "A new QR code")
	if got := decodeQR(t, b, "qr-second"); got != "" {
		require.Equal(t, second, got, "a newer QR code replaces the last")
	}
	wa.send(commands.Step{Type: commands.StepDone, Text: "WhatsApp is linked."})
	b.WaitText("#whatsapp .feedback", "WhatsApp is linked")
	b.WaitText("#networks-body", "connected")
	b.Do(chromedp.WaitNotVisible(chromedp.ID("wa-qr-canvas")), chromedp.WaitVisible(chromedp.ID("wa-logout")))
	b.Screenshot("logged-in")
}
