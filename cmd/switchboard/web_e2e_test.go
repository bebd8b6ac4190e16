package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/browser"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

// webDaemon is the daemon binary with SMS (a local fake Twilio) and
// WhatsApp (no WhatsApp servers reachable) enabled, against Dendrite, and
// alice registered there.
type webDaemon struct {
	hs            *dendrite.Server
	fake          *fakeTwilio
	listen        string
	alice, token  string
	page          string
	logs          *bytes.Buffer
	aliceOpenID   func() string
	provisionBase string
}

const alicePassword = "correct horse battery"

func startWebDaemon(t *testing.T) *webDaemon {
	t.Helper()
	fake := &fakeTwilio{}
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	listen := freePort(t)
	env := append(smsEnv(listen, api.URL), "SWITCHBOARD_WHATSAPP_ENABLED=true", "SWITCHBOARD_LOGGING_LEVEL=debug")
	// Dendrite serves its OpenID userinfo endpoint with the federation API.
	hs, env := withHomeserver(t, dir, env, dendrite.Options{LogLevel: "warn", Configure: func(cfg map[string]any) {
		cfg["global"].(map[string]any)["disable_federation"] = false
	}})
	logs := startDaemon(t, dir, env)
	d := &webDaemon{hs: hs, fake: fake, listen: listen, logs: logs,
		page: "http://" + listen + "/_switchboard/web/", provisionBase: "http://" + listen + "/_switchboard/provision/v1/"}
	d.alice, d.token = hs.RegisterUser(t, "alice", alicePassword)
	d.aliceOpenID = func() string {
		var openid struct {
			AccessToken string `json:"access_token"`
		}
		require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/user/"+url.PathEscape(d.alice)+"/openid/request_token",
			d.token, map[string]any{}, &openid))
		require.NotEmpty(t, openid.AccessToken)
		return openid.AccessToken
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(d.page)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the daemon never served the page")
	return d
}

// whoami asks the provisioning API as alice with a fresh OpenID token.
func (d *webDaemon) whoami(t *testing.T) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.provisionBase+"whoami?user_id="+url.QueryEscape(d.alice), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer openid:"+d.aliceOpenID())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	return string(body)
}

// The daemon serves the page with its security headers, from the real
// binary (the page's own tests check each header).
func TestWebPageServedByDaemon(t *testing.T) {
	dir := t.TempDir()
	listen := freePort(t)
	startDaemon(t, dir, []string{"SWITCHBOARD_APPSERVICE_LISTEN=" + listen, "SWITCHBOARD_HOMESERVER_ADDRESS=http://127.0.0.1:8448"})
	var resp *http.Response
	require.Eventually(t, func() bool {
		var err error
		resp, err = http.Get("http://" + listen + "/_switchboard/web")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "/_switchboard/web redirects to the page")
	require.Equal(t, "/_switchboard/web/", resp.Request.URL.Path)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	policy := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, policy, "default-src 'none'")
	require.Contains(t, policy, "connect-src 'self' http://127.0.0.1:8448;", "the configured homeserver's origin")
	require.Contains(t, policy, "frame-ancestors 'none'")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
}

// TestWebPageEndToEnd drives the page in headless Chromium against the
// real daemon, Dendrite and a fake Twilio: alice signs in with her Matrix
// password (the page gets an OpenID token from Dendrite and drops the
// password session), sees the networks and their state, asks for a
// WhatsApp QR code (WhatsApp's servers cannot be reached here, and the
// page shows the bridge's answer), links her number with the code the
// fake Twilio received (a wrong code refused first), sets her preferences
// and sees them in whoami; then signs in again with a pasted OpenID token.
// No request leaves loopback, nothing breaks the page's CSP, no
// JavaScript error; every step is a screenshot.
func TestWebPageEndToEnd(t *testing.T) {
	b := browser.Start(t)
	d := startWebDaemon(t)

	b.Step("signin-page", chromedp.Navigate(d.page), chromedp.WaitVisible(chromedp.ID("password-form")))
	require.Contains(t, b.Text("#password-form"), d.hs.URL, "the page says where the password goes")
	b.Do(
		chromedp.SendKeys(chromedp.ID("pw-user"), d.alice),
		chromedp.SendKeys(chromedp.ID("pw-password"), alicePassword),
		chromedp.Click(chromedp.CSS("#password-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("networks")),
	)
	require.Equal(t, d.alice, b.Text("#account-user"))
	require.Contains(t, b.WaitText("#status", "Signed in as"), d.alice)
	b.Screenshot("signed-in")
	var devices struct {
		Devices []map[string]any `json:"devices"`
	}
	require.Equal(t, http.StatusOK, d.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/devices", d.token, nil, &devices))
	require.Len(t, devices.Devices, 1, "the page logged its password session out again")

	networks := b.Text("#networks-body")
	for _, want := range []string{"Matrix", "WhatsApp", "SMS", "not logged in"} {
		require.Contains(t, networks, want)
	}
	require.Regexp(t, `SMS\s+ok`, networks)

	// WhatsApp: the QR login is asked for; WhatsApp's servers are out of
	// reach here, so the page shows the bridge's refusal.
	b.Do(chromedp.Click(chromedp.ID("wa-qr")))
	// (Wait for the answer itself: "Asking WhatsApp for a login…" is shown
	// while the request runs.)
	b.WaitText("#whatsapp .feedback", "Could not connect to WhatsApp right now")
	b.Screenshot("whatsapp-refused")

	// Link: the code goes to the number by SMS, through the fake Twilio.
	before := len(d.fake.sent())
	b.Do(
		chromedp.SendKeys(chromedp.ID("link-phone"), "+1 (415) 555-0123"),
		chromedp.Click(chromedp.CSS("#link-form button")),
	)
	b.WaitText("#links .feedback", "sms")
	b.Screenshot("link-sent")
	require.Eventually(t, func() bool { return len(d.fake.sent()) == before+1 }, 20*time.Second, 50*time.Millisecond, "no code sent")
	sms := d.fake.sent()[before]
	require.Equal(t, e2eContact, sms.Get("To"))
	code := sixDigits.FindStringSubmatch(sms.Get("Body"))
	require.NotNil(t, code, "no code in the SMS")
	wrong := "000000"
	if code[1] == wrong {
		wrong = "000001"
	}
	b.Do(
		chromedp.SendKeys(chromedp.ID("verify-code"), wrong),
		chromedp.Click(chromedp.CSS("#verify-form button")),
	)
	b.WaitText("#links .feedback.bad", "not right")
	b.Screenshot("verify-wrong")
	b.Do(
		chromedp.SendKeys(chromedp.ID("verify-code"), code[1]),
		chromedp.Click(chromedp.CSS("#verify-form button")),
	)
	b.WaitText("#links .feedback", "Linked")
	links := b.WaitText("#links-list", "…"+e2eContact[len(e2eContact)-4:])
	b.Screenshot("verified")
	require.Contains(t, links, "…"+e2eContact[len(e2eContact)-4:], "the number is masked")
	require.NotContains(t, links, contactNoPl)

	// Preferences: SMS on, messages for alice to SMS; whoami agrees.
	b.Do(chromedp.Click(chromedp.ID("pref-sms")), chromedp.SetValue(chromedp.ID("pref-prefer"), "sms"))
	b.Do(chromedp.Click(chromedp.CSS("#prefs-form button")))
	b.WaitText("#prefs .feedback", "SMS")
	b.Screenshot("preferences")
	who := d.whoami(t)
	require.Contains(t, who, `"preferences":{"sms":true,"reveal":false,"prefer":"sms"}`)
	require.NotContains(t, who, contactNoPl)
	b.Do(chromedp.Click(chromedp.ID("refresh")))
	b.WaitText("#networks .feedback", "Up to date")
	b.Screenshot("refreshed")
	checked, err := chromedp.Run(b.Context(), chromedp.Evaluate[[]any](`[document.getElementById('pref-sms').checked, document.getElementById('pref-prefer').value]`))
	require.NoError(t, err)
	require.Equal(t, []any{true, "sms"}, checked)

	// Nothing the page shows carries the number, only its owner typed it.
	shown, err := chromedp.Run(b.Context(), chromedp.Evaluate[string](`document.getElementById('main').innerText`))
	require.NoError(t, err)
	require.NotContains(t, shown, contactNoPl)

	// Sign out, and in again with a pasted OpenID token.
	b.Step("signed-out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("signin")))
	b.Do(
		chromedp.Click(chromedp.CSS("#token-details summary")),
		chromedp.SendKeys(chromedp.ID("tok-user"), d.alice),
		chromedp.SendKeys(chromedp.ID("tok-token"), d.aliceOpenID()),
		chromedp.Click(chromedp.CSS("#token-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("networks")),
	)
	b.WaitText("#links-list", "…"+e2eContact[len(e2eContact)-4:])
	b.Screenshot("token-signin")

	for _, r := range b.Requests() {
		require.True(t, browser.Loopback(strings.TrimPrefix(r, strings.SplitN(r, " ", 2)[0]+" ")), r)
	}
	require.NotContains(t, d.logs.String(), contactNoPl)
	t.Logf("screenshots: %s", b.Artifacts)
}
