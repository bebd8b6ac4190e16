package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

const provisionSecret = "provision-e2e-secret-0123456789abcdef0123"

// provisionClient calls the running daemon's provisioning API and keeps
// every answer body for the no-number canary.
type provisionClient struct {
	t      *testing.T
	base   string
	bodies []string
}

func (p *provisionClient) call(method, path, user, auth string, body any) (int, map[string]any) {
	p.t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(p.t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.base+path+"?user_id="+url.QueryEscape(user), r)
	require.NoError(p.t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	p.bodies = append(p.bodies, string(raw))
	var out map[string]any
	require.NoError(p.t, json.Unmarshal(raw, &out), "%s", raw)
	return resp.StatusCode, out
}

// startFederatingBotDM is startBotDM with Dendrite's federation API
// served (disable_federation: false), where its OpenID userinfo endpoint
// lives; nothing federates (one server, no outside key servers).
func startFederatingBotDM(t *testing.T, extraEnv ...string) *botDM {
	return startBotDMWith(t, dendrite.Options{Configure: func(cfg map[string]any) {
		cfg["global"].(map[string]any)["disable_federation"] = false
	}}, extraEnv...)
}

// The provisioning API on the real daemon with Dendrite: a Matrix OpenID
// token from Dendrite's own request_token is accepted (checked at
// Dendrite's real userinfo endpoint), a wrong or another user's token is
// not; the shared secret from the config works; `start` through the API
// answers exactly what the bot answers in a DM for the same input.
func TestProvisioningEndToEnd(t *testing.T) {
	b := startFederatingBotDM(t, "SWITCHBOARD_PROVISIONING_SHARED_SECRET="+provisionSecret)
	alice := b.hs.UserID("alice")
	api := &provisionClient{t: t, base: "http://" + b.listen + "/_switchboard/provision/v1/"}

	var openid struct {
		AccessToken string `json:"access_token"`
		ServerName  string `json:"matrix_server_name"`
	}
	status := b.hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/user/"+url.PathEscape(alice)+"/openid/request_token", b.token, map[string]any{}, &openid)
	require.Equal(t, http.StatusOK, status)
	require.NotEmpty(t, openid.AccessToken)

	status, out := api.call(http.MethodGet, "whoami", alice, "Bearer openid:"+openid.AccessToken, nil)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, alice, out["user_id"])
	require.Equal(t, "user", out["permission"])

	for _, tc := range []struct{ name, user, auth string }{
		{"wrong token", alice, "Bearer openid:not-a-token"},
		{"another user's token", b.hs.UserID("bob"), "Bearer openid:" + openid.AccessToken},
		{"token of an unknown server", "@alice:elsewhere.example", "Bearer openid:" + openid.AccessToken},
		{"no credentials", alice, ""},
		{"wrong secret", alice, "Bearer " + provisionSecret + "0"},
	} {
		status, out = api.call(http.MethodGet, "whoami", tc.user, tc.auth, nil)
		require.Equal(t, http.StatusUnauthorized, status, tc.name)
		require.Equal(t, "SB_UNAUTHORIZED", out["errcode"], tc.name)
	}

	status, out = api.call(http.MethodGet, "whoami", alice, "Bearer "+provisionSecret, nil)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, []any{map[string]any{"id": "matrix", "state": "ok"}}, out["networks"])

	// start: the same answer as the bot's for each case this bridge has
	// (no phone network is enabled here).
	for _, tc := range []struct{ number, code string }{
		{"4155550123", "SB_BAD_REQUEST"},
		{"+1 415 555 0123", "SB_REFUSED"},
	} {
		status, out = api.call(http.MethodPost, "start", alice, "Bearer openid:"+openid.AccessToken, map[string]any{"phone": tc.number})
		require.Equal(t, tc.code, out["errcode"], "%d %v", status, out)
		apiAnswer := out["error"].(string)
		require.Equal(t, apiAnswer, b.ask("start "+tc.number, apiAnswer), "the bot answers the same")
	}

	digits := regexp.MustCompile(`[^0-9]`)
	for _, body := range api.bodies {
		require.NotContains(t, digits.ReplaceAllString(body, ""), "4155550123", "no number in an answer: %s", body)
	}
	require.NotContains(t, b.logs.String(), "4155550123")
	require.False(t, strings.Contains(b.logs.String(), openid.AccessToken), "the OpenID token is not logged")
}
