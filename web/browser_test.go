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
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/browser"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// servePage runs the page's handler under Prefix on a loopback server.
func servePage(t *testing.T, opts Options) string {
	t.Helper()
	h, err := New(opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(Prefix, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + Prefix
}

// In a real browser the page loads under its own strict policy with no
// violation, no console error and no request beyond loopback, and offers
// both ways to sign in, each control with its label.
func TestPageInBrowser(t *testing.T) {
	b := browser.Start(t)
	page := servePage(t, Options{Homeserver: "http://127.0.0.1:9"})
	b.Step("signin", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("password-form")))
	require.Contains(t, b.Text("#password-form"), "http://127.0.0.1:9")
	require.Equal(t, "Sign in with Matrix", b.Text("#signin-title"))
	unlabelled, err := chromedp.Run(b.Context(), chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input, select'))
		.filter(e => !(e.labels && e.labels.length)).map(e => e.id)`))
	require.NoError(t, err)
	require.Empty(t, unlabelled, "every control has a label")
	b.Step("token-form", chromedp.Click(chromedp.CSS("#token-details summary")), chromedp.WaitVisible(chromedp.ID("tok-token")))

	// A bad Matrix ID is refused on the page, in the alert region; the
	// form is sent from the keyboard (Enter).
	b.Step("bad-user", chromedp.SendKeys(chromedp.ID("tok-user"), "alice"), chromedp.SendKeys(chromedp.ID("tok-token"), "x\r"))
	require.Contains(t, b.WaitText("#error", "full Matrix ID"), "@alice:example.org")
	require.Contains(t, strings.Join(b.Requests(), "\n"), "favicon.svg")
}

// The page's QR encoder draws codes that a real decoder (zbarimg) reads
// back exactly, from one-module-block codes to multi-block versions with
// version information, UTF-8 included.
func TestQRCodesDecode(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		testenv.SkipUnlessRequired(t, browser.EnvRequire, "zbarimg (apt-get install zbar-tools) is needed to decode the QR codes")
	}
	b := browser.Start(t)
	b.Do(chromedp.Navigate(servePage(t, Options{})), chromedp.WaitReady(chromedp.ID("wa-qr-canvas")))
	whatsappLike := "2@" + strings.Repeat("Kx3vQ9zR", 12) + "," + strings.Repeat("a2V5", 11) + "=," + strings.Repeat("aWQ=", 11) + "," + strings.Repeat("YWR2", 6)
	for i, text := range []string{
		"hi",
		"https://matrix.to/#/!room:example.org",
		whatsappLike,
		strings.Repeat("0123456789abcdefghij", 20),
		strings.Repeat("switchboard QR ", 60),
		"grüße, 你好 — ☎",
	} {
		arg, _ := json.Marshal(text)
		_, err := chromedp.Run(b.Context(), chromedp.Evaluate[chromedp.Void](`(() => {
			document.getElementById('app').hidden = false;
			document.getElementById('whatsapp').hidden = false;
			document.getElementById('wa-step').hidden = false;
			const c = document.getElementById('wa-qr-canvas');
			c.hidden = false;
			SwitchboardQR.draw(c, `+string(arg)+`);
		})()`))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(b.Context(), browser.StepTimeout)
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID("wa-qr-canvas")))
		cancel()
		require.NoError(t, err)
		path := filepath.Join(b.Artifacts, "qr-"+string(rune('a'+i))+".png")
		require.NoError(t, os.WriteFile(path, png, 0o644))
		out, err := exec.Command(zbar, "--raw", "-q", "-Sbinary", path).Output()
		require.NoError(t, err, "zbarimg could not read the QR code for %q (%s)", text, path)
		require.Equal(t, text, strings.TrimSuffix(string(out), "\n"), "decoded QR code (%s)", path)
	}
}
