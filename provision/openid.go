package provision

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OpenID verification limits.
const (
	// openIDCacheFor bounds how long a confirmed token is remembered.
	openIDCacheFor = 60 * time.Second
	// openIDCacheMax bounds how many confirmed tokens are remembered.
	openIDCacheMax = 1024
	// openIDTimeout bounds one verification (well-known lookup included).
	openIDTimeout = 10 * time.Second
	// openIDMaxAnswer bounds an answer read from a homeserver.
	openIDMaxAnswer = 16 << 10
)

// openIDVerifier confirms Matrix OpenID tokens with the user's homeserver
// (GET /_matrix/federation/v1/openid/userinfo). It asks only the bridge's
// own homeserver (at its configured address) and servers whose name the
// permissions list explicitly: a token never makes the bridge request an
// attacker-chosen host.
type openIDVerifier struct {
	client  *http.Client
	domain  string
	hsURL   string
	allowed func(server string) bool
	now     func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]openIDEntry
}

type openIDEntry struct {
	user  string
	until time.Time
}

func newOpenIDVerifier(client *http.Client, domain, hsURL string, allowed func(string) bool, now func() time.Time) *openIDVerifier {
	if client == nil {
		client = &http.Client{}
	}
	// Never follow a redirect: the answer must come from the server asked.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = openIDTimeout
	return &openIDVerifier{client: &c, domain: domain, hsURL: strings.TrimRight(hsURL, "/"), allowed: allowed, now: now,
		cache: map[[32]byte]openIDEntry{}}
}

// verify confirms that token belongs to user (whose server name says
// which homeserver to ask).
func (v *openIDVerifier) verify(ctx context.Context, token, user, server string) error {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	if e, ok := v.cache[key]; ok && now.Before(e.until) {
		v.mu.Unlock()
		if e.user != user {
			return ErrOpenIDToken
		}
		return nil
	}
	v.mu.Unlock()

	base, err := v.baseURL(ctx, server)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, openIDTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		base+"/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(token), nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOpenIDUnreachable, err)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrOpenIDUnreachable, scrubURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%w: status %d", ErrOpenIDUnreachable, resp.StatusCode)
		}
		return ErrOpenIDToken
	}
	var info struct {
		Sub string `json:"sub"`
	}
	if err = json.NewDecoder(io.LimitReader(resp.Body, openIDMaxAnswer)).Decode(&info); err != nil || info.Sub != user {
		return ErrOpenIDToken
	}
	v.remember(key, user, now)
	return nil
}

// remember keeps a confirmed token for openIDCacheFor, dropping expired
// entries (and, when full, every entry) first.
func (v *openIDVerifier) remember(key [32]byte, user string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= openIDCacheMax {
		for k, e := range v.cache {
			if !now.Before(e.until) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= openIDCacheMax {
			clear(v.cache)
		}
	}
	v.cache[key] = openIDEntry{user: user, until: now.Add(openIDCacheFor)}
}

// baseURL is where server's federation API is asked: the configured
// homeserver address for the bridge's own domain; for another server that
// the permissions name, its .well-known/matrix/server delegation or
// port 8448. Other servers are refused without a request.
func (v *openIDVerifier) baseURL(ctx context.Context, server string) (string, error) {
	if strings.EqualFold(server, v.domain) {
		return v.hsURL, nil
	}
	if v.allowed == nil || !v.allowed(server) {
		return "", ErrOpenIDServer
	}
	if _, _, err := net.SplitHostPort(server); err == nil {
		return "https://" + server, nil
	}
	if delegated := v.wellKnown(ctx, server); delegated != "" {
		if _, _, err := net.SplitHostPort(delegated); err == nil {
			return "https://" + delegated, nil
		}
		return "https://" + net.JoinHostPort(delegated, "8448"), nil
	}
	return "https://" + net.JoinHostPort(server, "8448"), nil
}

// wellKnown reads m.server from https://<server>/.well-known/matrix/server
// ("" when there is none or it is not a plain host[:port]).
func (v *openIDVerifier) wellKnown(ctx context.Context, server string) string {
	ctx, cancel := context.WithTimeout(ctx, openIDTimeout/2)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+"/.well-known/matrix/server", nil)
	if err != nil {
		return ""
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var wk struct {
		Server string `json:"m.server"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, openIDMaxAnswer)).Decode(&wk) != nil {
		return ""
	}
	if wk.Server == "" || strings.ContainsAny(wk.Server, "/?#@ \\") {
		return ""
	}
	return wk.Server
}

// scrubURL drops the URL (which holds the token) from a client error.
func scrubURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "request failed"
}
