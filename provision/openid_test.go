package provision_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// userinfo is a homeserver's OpenID endpoint: it knows one token per
// user and counts the requests it gets, by host.
type userinfo struct {
	mu     sync.Mutex
	tokens map[string]string
	hosts  []string
}

func (u *userinfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hosts = append(u.hosts, r.Host)
	user, ok := u.tokens[r.URL.Query().Get("access_token")]
	u.mu.Unlock()
	if r.URL.Path != "/_matrix/federation/v1/openid/userinfo" || !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"sub": user})
}

func (u *userinfo) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.hosts...)
}

// toServer sends every request, whatever its host, to srv (and keeps the
// host asked for in Host), standing in for DNS.
type toServer struct{ srv *url.URL }

func (t toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = r.URL.Host
	r.URL.Scheme, r.URL.Host = t.srv.Scheme, t.srv.Host
	return http.DefaultTransport.RoundTrip(r)
}

// An OpenID token is checked with the user's homeserver: the bridge's own
// at its configured address, another only when the permissions name it
// (at its federation port); a bad, foreign or mismatched token is 401;
// a server the permissions do not name is never asked; a confirmed token
// is remembered briefly (not asked again).
func TestOpenID(t *testing.T) {
	info := &userinfo{tokens: map[string]string{"good": alice, "friend": "@carol:friends.net", "evil": "@mallory:evil.net"}}
	hs := httptest.NewServer(info)
	t.Cleanup(hs.Close)
	target, err := url.Parse(hs.URL)
	require.NoError(t, err)
	h := newHarness(t, dbtest.SQLite(t), harnessOpts{
		noWhatsApp:   true,
		hsURL:        "http://homeserver.example.org:8008",
		openID:       &http.Client{Transport: toServer{target}},
		openIDServer: func(server string) bool { return server == "friends.net" },
	})
	whoami := func(user, token string) (int, map[string]any) {
		return h.do(call{method: http.MethodGet, path: "whoami", user: user, auth: "Bearer openid:" + token})
	}

	status, out := whoami(alice, "good")
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, alice, out["user_id"])
	require.Equal(t, []string{"homeserver.example.org:8008"}, info.requests(), "the configured homeserver address is asked")
	status, _ = whoami(alice, "good")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, info.requests(), 1, "a confirmed token is remembered")

	status, out = whoami(admin, "good")
	requireError(t, status, out, http.StatusUnauthorized, "SB_UNAUTHORIZED")
	status, out = whoami(alice, "wrong")
	requireError(t, status, out, http.StatusUnauthorized, "SB_UNAUTHORIZED")
	status, out = whoami(alice, "")
	requireError(t, status, out, http.StatusUnauthorized, "SB_UNAUTHORIZED")

	// A server the OpenIDServer policy allows is asked at its federation
	// port (after a .well-known lookup that finds nothing); carol is then
	// authenticated, and refused for her level (she has none here).
	before := len(info.requests())
	status, out = whoami("@carol:friends.net", "friend")
	requireError(t, status, out, http.StatusForbidden, "SB_FORBIDDEN")
	require.Equal(t, []string{"friends.net", "friends.net:8448"}, info.requests()[before:])

	// A server nobody named is never asked, whatever the token.
	before = len(info.requests())
	for _, user := range []string{"@mallory:evil.net", "@mallory:127.0.0.1:8008", "@mallory:[::1]", "@mallory:169.254.169.254"} {
		status, out = whoami(user, "evil")
		requireError(t, status, out, http.StatusUnauthorized, "SB_UNAUTHORIZED")
	}
	require.Len(t, info.requests(), before, "no request to a server the permissions do not name")
	h.requireNoNumbers()
}
