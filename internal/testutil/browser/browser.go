// Package browser drives Debian's Chromium, headless, from tests, and
// watches it for what a page must never do: reach beyond loopback, break its
// Content-Security-Policy, or log a JavaScript error.
//
// Every network request the page makes is recorded (CDP Network domain)
// and any URL whose host is not loopback fails the test. Chromium is also
// started with an HTTP proxy of the harness's own: loopback bypasses it,
// so anything that reaches the proxy — the page's or the browser's own
// background traffic — is a request that left loopback, and fails the
// test too (the proxy answers 403, so nothing goes out). Chromium's own
// services that would phone home (the component updater, Google sign-in)
// are pointed at a loopback sink by flags, so a clean run has no proxy
// hits. A
// `securitypolicyviolation` listener installed in every document, the
// Audits domain's CSP issues and the Log domain's security entries catch
// CSP violations; console.error, uncaught exceptions and Log errors other
// than failed HTTP statuses catch JavaScript errors.
//
// Step takes a PNG screenshot of the page after each step into an
// artifact directory: $SWITCHBOARD_ARTIFACTS/<test name> when that is set,
// else a directory under the test's temp dir; the path is logged.
//
// Tests skip when Chromium is absent, unless SWITCHBOARD_REQUIRE_CHROMIUM=1
// makes that an error (CI sets it).
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/audits"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// Chromium fail the test instead of skipping it. CI sets it.
const EnvRequire = "SWITCHBOARD_REQUIRE_CHROMIUM"

// EnvArtifacts names the environment variable holding the directory that
// screenshots go to (a subdirectory per test).
const EnvArtifacts = "SWITCHBOARD_ARTIFACTS"

// EnvChromium names an environment variable that may point at the
// Chromium binary; otherwise /usr/bin/chromium or chromium on PATH.
const EnvChromium = "SWITCHBOARD_CHROMIUM"

// StepTimeout bounds one Step or Do: a page that never shows what the test
// waits for fails instead of hanging.
const StepTimeout = 30 * time.Second

// cspListener reports CSP violations to the console, where the harness
// sees them. It runs in every document before the page's own scripts (CDP
// scripts are not subject to the page's CSP).
const cspListener = `document.addEventListener('securitypolicyviolation', function (e) {
  console.error('securitypolicyviolation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || '(inline)') +
    ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

// disabledFeatures are Chromium features that phone home in the
// background (time, component and model updates, sign-in, media router).
var disabledFeatures = []string{
	"Translate", "BlinkGenPropertyTrees", "NetworkTimeServiceQuerying",
	"OptimizationHints", "OptimizationHintsFetching", "OptimizationGuideModelDownloading",
	"MediaRouter", "DialMediaRouteProvider", "AutofillServerCommunication",
	"CertificateTransparencyComponentUpdater", "InterestFeedContentSuggestions",
	"LensOverlay", "PrivacySandboxSettings4",
	"PasswordLeakDetection", "LeakDetectionUnauthenticated", "PasswordManagerOnboarding",
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context
	// Artifacts is the directory screenshots are written to.
	Artifacts string

	mu       sync.Mutex
	requests []string
	problems []string
	reported int
	steps    int
}

// Path returns the Chromium binary to use, or "" if there is none.
func Path() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start launches Chromium for t and stops it when t ends. It skips t when
// Chromium is missing (fails it under SWITCHBOARD_REQUIRE_CHROMIUM=1).
func Start(t testing.TB) *Browser {
	t.Helper()
	bin := Path()
	if bin == "" {
		testenv.SkipUnlessRequired(t, EnvRequire, "Chromium is not installed (apt-get install chromium); the browser tests need it")
	}
	b := &Browser{t: t, Artifacts: artifactDir(t)}
	if err := os.MkdirAll(b.Artifacts, 0o755); err != nil {
		t.Fatalf("browser: artifacts: %v", err)
	}
	t.Logf("browser: screenshots go to %s", b.Artifacts)
	proxy := b.startProxy()
	sink := b.startSink()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("no-service-autorun", true),
		chromedp.Flag("disable-features", strings.Join(disabledFeatures, ",")),
		chromedp.ProxyServer("http://"+proxy),
		// Services that Chromium reaches on its own, pointed at a loopback
		// sink so they never try the internet.
		chromedp.Flag("component-updater", "url-source=http://"+sink+"/component-updater"),
		chromedp.Flag("gaia-url", "http://"+sink+"/"),
		chromedp.Flag("lso-url", "http://"+sink+"/"),
		chromedp.Flag("google-apis-url", "http://"+sink+"/"),
		chromedp.Flag("google-url", "http://"+sink+"/"),
		chromedp.UserDataDir(profile(t)),
		chromedp.WindowSize(1024, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		b.check()
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Logf("browser: %d requests, all on loopback; screenshots in %s", len(b.requests), b.Artifacts)
	})
	b.ctx = ctx
	if err := chromedp.Listen(ctx, b.observe); err != nil {
		t.Fatalf("browser: start Chromium %s: %v", bin, err)
	}
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, audits.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
		return err
	}))
	if err != nil {
		t.Fatalf("browser: set up the tab: %v", err)
	}
	return b
}

// profile returns a fresh user data directory whose preferences turn off
// the password manager (its leak check would call Google on a password
// sign-in) and Safe Browsing.
func profile(t testing.TB) string {
	dir := t.TempDir()
	prefs := `{"credentials_enable_service": false,
  "profile": {"password_manager_enabled": false, "password_manager_leak_detection": false},
  "safebrowsing": {"enabled": false}, "search": {"suggest_enabled": false},
  "translate": {"enabled": false}}`
	if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
		t.Fatalf("browser: profile: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatalf("browser: profile: %v", err)
	}
	return dir
}

// artifactDir is where t's screenshots go.
func artifactDir(t testing.TB) string {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	if base := os.Getenv(EnvArtifacts); base != "" {
		return filepath.Join(base, name)
	}
	return filepath.Join(t.TempDir(), "artifacts", name)
}

// startProxy runs the proxy that records whatever the browser tries to
// reach beyond loopback, and answers it 403.
func (b *Browser) startProxy() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Fatalf("browser: proxy: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.String()
		if r.Method == http.MethodConnect {
			target = "https://" + r.Host + "/"
		}
		b.fail("request beyond loopback (reached the harness's proxy): %s %s", r.Method, target)
		http.Error(w, "switchboard browser harness: no request may leave loopback", http.StatusForbidden)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// startSink runs the loopback server that Chromium's own services (the
// component updater, sign-in) are pointed at; it answers 404 and logs.
func (b *Browser) startSink() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Fatalf("browser: sink: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.t.Logf("browser: Chromium's own request, kept on loopback: %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// observe runs in chromedp's read loop: it must be quick and not call
// back into the browser.
func (b *Browser) observe(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		b.mu.Lock()
		b.requests = append(b.requests, ev.Request.Method+" "+u)
		b.mu.Unlock()
		if !Loopback(u) {
			b.fail("request beyond loopback: %s %s", ev.Request.Method, u)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			b.fail("console.%s: %s", ev.Type, args(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.fail("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		switch {
		case e.Source == cdplog.EntrySourceSecurity:
			b.fail("security log entry (%s): %s", e.Level, e.Text)
		case e.Level == cdplog.EntryLevelError && e.Source == cdplog.EntrySourceNetwork:
			// A failed HTTP status (an API refusing wrong input) is the
			// page's business; its requests are checked above.
			b.t.Logf("browser: network log: %s %s", e.Text, e.URL)
		case e.Level == cdplog.EntryLevelError:
			b.fail("log error (%s): %s %s", e.Source, e.Text, e.URL)
		}
	case *audits.EventIssueAdded:
		if ev.Issue.Code == audits.InspectorIssueCodeContentSecurityPolicyIssue {
			msg := "CSP issue"
			if d := ev.Issue.Details; d != nil && d.ContentSecurityPolicyIssueDetails != nil {
				c := d.ContentSecurityPolicyIssueDetails
				msg = fmt.Sprintf("CSP violation: %s blocked %q (%s)", c.ViolatedDirective, c.BlockedURL, c.ContentSecurityPolicyViolationType)
			}
			b.fail("%s", msg)
		}
	}
}

func args(objs []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(objs))
	for _, o := range objs {
		var str string
		if json.Unmarshal(o.Value, &str) == nil {
			parts = append(parts, str)
		} else if len(o.Value) > 0 {
			parts = append(parts, string(o.Value))
		} else {
			parts = append(parts, o.Description)
		}
	}
	return strings.Join(parts, " ")
}

// fail records a problem; check reports it from the test's goroutine.
func (b *Browser) fail(format string, a ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, fmt.Sprintf(format, a...))
	b.mu.Unlock()
}

// check fails the test with every problem seen since the last check.
func (b *Browser) check() {
	b.t.Helper()
	b.mu.Lock()
	fresh := b.problems[b.reported:]
	b.reported = len(b.problems)
	b.mu.Unlock()
	for _, p := range fresh {
		b.t.Errorf("browser: %s", p)
	}
}

// Problems returns every problem recorded so far (for the harness's own
// tests).
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Requests returns every request the page made so far, as "METHOD URL".
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Context is the chromedp context of the tab, for chromedp.Run with
// actions that return a value.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs actions in the tab within StepTimeout and fails the test if one
// fails or the page misbehaved meanwhile.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	err := chromedp.Do(ctx, actions...)
	b.check()
	if err != nil {
		b.screenshot("failed")
		b.t.Fatalf("browser: %v", err)
	}
}

// Step runs actions like Do and then saves a screenshot of the whole page
// as NN-name.png in the artifact directory.
func (b *Browser) Step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.Do(actions...)
	b.screenshot(name)
}

// Text returns the text of the first element matching the CSS selector,
// once it is visible.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(css))); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("browser: wait for %s: %v", css, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

// WaitText waits until the text of the first element matching css
// contains want, and returns that text.
func (b *Browser) WaitText(css, want string) string {
	b.t.Helper()
	deadline := time.Now().Add(StepTimeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
		cancel()
		if err == nil && strings.Contains(s, want) {
			b.check()
			return s
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	b.check()
	b.screenshot("failed")
	b.t.Fatalf("browser: %s never contained %q (last: %q)", css, want, last)
	return ""
}

// Screenshot saves a PNG of the whole page as NN-name.png and returns its
// path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	return b.screenshot(name)
}

func (b *Browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("browser: screenshot %s: %v", name, err)
		return ""
	}
	b.mu.Lock()
	b.steps++
	n := b.steps
	b.mu.Unlock()
	path := filepath.Join(b.Artifacts, fmt.Sprintf("%02d-%s.png", n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("browser: save screenshot: %v", err)
	}
	return path
}

// Loopback reports whether a URL the browser loads stays on this machine:
// a loopback host (127.0.0.0/8, ::1, localhost), or a scheme that is no
// network request at all (data:, blob:, about:).
func Loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	case "http", "https", "ws", "wss":
	default:
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
