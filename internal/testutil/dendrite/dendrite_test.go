package dendrite_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

const (
	asToken = "as_token_for_switchboard_harness_test"
	hsToken = "hs_token_for_switchboard_harness_test"
)

// writeRegistration writes an appservice registration like the one the
// bridge will generate, with the given YAML lines left out.
func writeRegistration(t *testing.T, drop ...string) string {
	t.Helper()
	lines := []string{
		"id: switchboard-test",
		"url: http://127.0.0.1:1",
		"as_token: " + asToken,
		"hs_token: " + hsToken,
		"sender_localpart: sbbot",
		"rate_limited: false",
		"namespaces:",
		"  users:",
		"    - exclusive: true",
		`      regex: "@sb_.*:localhost"`,
	}
	var kept []string
	for _, l := range lines {
		skip := false
		for _, d := range drop {
			if strings.HasPrefix(l, d) {
				skip = true
			}
		}
		if !skip {
			kept = append(kept, l)
		}
	}
	path := filepath.Join(t.TempDir(), "registration.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStartWithAppService(t *testing.T) {
	began := time.Now()
	hs := dendrite.Start(t, dendrite.Options{Registrations: []string{writeRegistration(t)}})
	t.Logf("%s ready in %s", hs, time.Since(began))

	if errs := hs.AppServiceLogErrors(); len(errs) > 0 {
		t.Errorf("Dendrite logged appservice errors:\n%s", strings.Join(errs, "\n"))
	}

	// Dendrite created the appservice's sender user; the as_token acts as it.
	if got, status := hs.Whoami(t, asToken); status != http.StatusOK || got != "@sbbot:localhost" {
		t.Errorf("whoami with as_token = %q, status %d; want @sbbot:localhost, 200", got, status)
	}
	for _, token := range []string{hsToken, "not-a-token", ""} {
		var merr dendrite.MatrixError
		status := hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil, &merr)
		if status != http.StatusUnauthorized {
			t.Errorf("whoami with token %q: status %d, want 401", token, status)
		}
		if want := map[bool]string{true: "M_MISSING_TOKEN", false: "M_UNKNOWN_TOKEN"}[token == ""]; merr.ErrCode != want {
			t.Errorf("whoami with token %q: errcode %q, want %q", token, merr.ErrCode, want)
		}
	}

	// The appservice registers ghosts in its namespace and acts as them.
	ghost := map[string]any{"type": "m.login.application_service", "username": "sb_alice", "inhibit_login": true}
	if status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/register", asToken, ghost, nil); status != http.StatusOK {
		t.Errorf("registering a ghost with the as_token: status %d", status)
	}
	var who struct {
		UserID string `json:"user_id"`
	}
	if status := hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/account/whoami?user_id=@sb_alice:localhost", asToken, nil, &who); status != http.StatusOK || who.UserID != "@sb_alice:localhost" {
		t.Errorf("whoami as the ghost = %q, status %d", who.UserID, status)
	}
	outside := map[string]any{"type": "m.login.application_service", "username": "not_a_ghost", "inhibit_login": true}
	if status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/register", asToken, outside, nil); status == http.StatusOK {
		t.Error("the appservice registered a user outside its namespace")
	}

	aliceID, aliceToken := hs.RegisterUser(t, "alice", "alice-password")
	bobID, bobToken := hs.RegisterUser(t, "bob", "bob-password")
	if aliceID != "@alice:localhost" || bobID != hs.UserID("bob") {
		t.Errorf("registered %q and %q", aliceID, bobID)
	}
	for id, token := range map[string]string{aliceID: aliceToken, bobID: bobToken} {
		if got, _ := hs.Whoami(t, token); got != id {
			t.Errorf("whoami = %q, want %q", got, id)
		}
	}

	sess := hs.Login(t, "alice", "alice-password", "ALICEDEVICE")
	if sess.UserID != aliceID || sess.DeviceID != "ALICEDEVICE" || sess.AccessToken == aliceToken {
		t.Errorf("login gave %+v", sess)
	}
	var merr dendrite.MatrixError
	status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"},
		"password":   "wrong",
	}, &merr)
	if status != http.StatusForbidden || merr.ErrCode != "M_FORBIDDEN" {
		t.Errorf("login with a wrong password: %d %s, want 403 M_FORBIDDEN", status, merr.ErrCode)
	}

	// A user in the appservice's exclusive namespace cannot be registered
	// by anyone else.
	status = hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/register", "", map[string]any{
		"username": "sb_ghost", "password": "ghost-password", "auth": map[string]any{"type": "m.login.dummy"},
	}, &merr)
	if status != http.StatusBadRequest || merr.ErrCode != "M_EXCLUSIVE" {
		t.Errorf("registering in the exclusive namespace: %d %s, want 400 M_EXCLUSIVE", status, merr.ErrCode)
	}
}

func TestBadRegistrationIsRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop []string
		want string
	}{
		{"no hs_token", []string{"hs_token"}, "Homeserver Token is required"},
		{"no sender_localpart", []string{"sender_localpart"}, "Sender Localpart is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := dendrite.TryStart(t, dendrite.Options{Registrations: []string{writeRegistration(t, tc.drop...)}})
			if err == nil {
				t.Fatal("Dendrite started with a broken registration")
			}
			if hs == nil {
				t.Fatalf("no server to inspect: %v", err)
			}
			errs := hs.AppServiceLogErrors()
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("appservice log errors = %q, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestRestartKeepsData(t *testing.T) {
	hs := dendrite.Start(t, dendrite.Options{ServerName: "sb.test"})
	userID, token := hs.RegisterUser(t, "carol", "carol-password")
	if userID != "@carol:sb.test" {
		t.Errorf("user ID %q, want @carol:sb.test", userID)
	}
	url := hs.URL

	hs.Stop()
	if hs.Running() {
		t.Fatal("still running after Stop")
	}
	began := time.Now()
	hs.Restart(t)
	t.Logf("restarted in %s", time.Since(began))
	if hs.URL != url {
		t.Logf("URL changed across restart: %s -> %s", url, hs.URL)
	}
	if got, _ := hs.Whoami(t, token); got != userID {
		t.Errorf("after restart whoami = %q, want %q", got, userID)
	}
	if sess := hs.Login(t, "carol", "carol-password", ""); sess.UserID != userID {
		t.Errorf("after restart login gave %+v", sess)
	}
}
