package dendrite

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// SetPasswordAsAdmin gives user a password through Dendrite's admin API
// (POST /_dendrite/admin/resetPassword/{userID}), as an admin registered
// with the test config's registration shared secret. Appservice users
// have no password until one is set this way.
func (s *Server) SetPasswordAsAdmin(t testing.TB, user, password string) {
	t.Helper()
	cfgData, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatalf("read %s: %v", s.ConfigPath, err)
	}
	var cfg struct {
		ClientAPI struct {
			Secret string `yaml:"registration_shared_secret"`
		} `yaml:"client_api"`
	}
	if err = yaml.Unmarshal(cfgData, &cfg); err != nil || cfg.ClientAPI.Secret == "" {
		t.Fatalf("no registration_shared_secret in %s: %v", s.ConfigPath, err)
	}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if status := s.DoJSON(t, http.MethodGet, "/_synapse/admin/v1/register", "", nil, &nonce); status != http.StatusOK {
		t.Fatalf("admin register nonce: status %d", status)
	}
	const name, adminPassword = "hsadmin", "hsadmin-password"
	mac := hmac.New(sha1.New, []byte(cfg.ClientAPI.Secret))
	mac.Write([]byte(nonce.Nonce + "\x00" + name + "\x00" + adminPassword + "\x00admin"))
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	if status := s.DoJSON(t, http.MethodPost, "/_synapse/admin/v1/register", "", map[string]any{
		"nonce": nonce.Nonce, "username": name, "password": adminPassword, "admin": true, "mac": hex.EncodeToString(mac.Sum(nil)),
	}, &reg); status != http.StatusOK {
		t.Fatalf("admin register: status %d", status)
	}
	var out map[string]any
	if status := s.DoJSON(t, http.MethodPost, "/_dendrite/admin/resetPassword/"+url.PathEscape(user), reg.AccessToken,
		map[string]any{"password": password, "logout_devices": false}, &out); status != http.StatusOK {
		t.Fatalf("reset the password of %s: status %d: %v", user, status, out)
	}
}
