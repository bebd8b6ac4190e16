package dendrite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Session is a logged-in device.
type Session struct {
	// UserID is the full Matrix user ID.
	UserID string `json:"user_id"`
	// AccessToken authenticates as this device.
	AccessToken string `json:"access_token"`
	// DeviceID is the device's ID.
	DeviceID string `json:"device_id"`
}

// MatrixError is the error body of the client-server API.
type MatrixError struct {
	// ErrCode is the Matrix error code, like M_FORBIDDEN.
	ErrCode string `json:"errcode"`
	// Err is the human-readable message.
	Err string `json:"error"`
}

// DoJSON sends a client-server API request to path (like
// "/_matrix/client/v3/account/whoami") with body encoded as JSON when it is
// not nil and token as the Bearer token when it is not empty. It decodes
// the response body into out when out is not nil and the body is not empty,
// whatever the status, and returns the status code. Transport and decoding
// errors fail t.
func (s *Server) DoJSON(t testing.TB, method, path, token string, body, out any) int {
	t.Helper()
	var reqBody io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("dendrite: encode %s %s body: %v", method, path, err)
		}
		reqBody = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, reqBody)
	if err != nil {
		t.Fatalf("dendrite: build %s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("dendrite: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("dendrite: read %s %s response: %v", method, path, err)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("dendrite: decode %s %s response (%s): %v: %s", method, path, resp.Status, err, data)
		}
	}
	return resp.StatusCode
}

// RegisterUser creates the user localpart with password through open
// registration (m.login.dummy) and returns its user ID and the access token
// of the device that registration created.
func (s *Server) RegisterUser(t testing.TB, localpart, password string) (userID, accessToken string) {
	t.Helper()
	sess := s.Register(t, localpart, password, "")
	return sess.UserID, sess.AccessToken
}

// Register is RegisterUser that also names the new device (a generated one
// when deviceID is empty) and returns the whole Session.
func (s *Server) Register(t testing.TB, localpart, password, deviceID string) Session {
	t.Helper()
	req := map[string]any{
		"username": localpart,
		"password": password,
		"auth":     map[string]any{"type": "m.login.dummy"},
	}
	if deviceID != "" {
		req["device_id"] = deviceID
	}
	var resp struct {
		Session
		MatrixError
		UIASession string `json:"session"`
	}
	status := s.DoJSON(t, http.MethodPost, "/_matrix/client/v3/register", "", req, &resp)
	if status == http.StatusUnauthorized && resp.UIASession != "" {
		// Interactive auth asked for a session first; answer with it.
		req["auth"] = map[string]any{"type": "m.login.dummy", "session": resp.UIASession}
		resp = struct {
			Session
			MatrixError
			UIASession string `json:"session"`
		}{}
		status = s.DoJSON(t, http.MethodPost, "/_matrix/client/v3/register", "", req, &resp)
	}
	if status != http.StatusOK || resp.AccessToken == "" {
		t.Fatalf("dendrite: register %q: status %d, %s: %s", localpart, status, resp.ErrCode, resp.Err)
	}
	return resp.Session
}

// Login logs localpart in with password and returns the new device's
// session. deviceID names the device; Dendrite generates one when it is
// empty.
func (s *Server) Login(t testing.TB, localpart, password, deviceID string) Session {
	t.Helper()
	req := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": localpart},
		"password":   password,
	}
	if deviceID != "" {
		req["device_id"] = deviceID
	}
	var resp struct {
		Session
		MatrixError
	}
	if status := s.DoJSON(t, http.MethodPost, "/_matrix/client/v3/login", "", req, &resp); status != http.StatusOK {
		t.Fatalf("dendrite: login %q: status %d, %s: %s", localpart, status, resp.ErrCode, resp.Err)
	}
	return resp.Session
}

// Whoami returns the user ID that token authenticates as, with the HTTP
// status; the user ID is empty when the token is rejected.
func (s *Server) Whoami(t testing.TB, token string) (userID string, status int) {
	t.Helper()
	var resp struct {
		UserID string `json:"user_id"`
	}
	status = s.DoJSON(t, http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil, &resp)
	if status != http.StatusOK {
		return "", status
	}
	return resp.UserID, status
}

// String describes the server for log lines.
func (s *Server) String() string {
	return fmt.Sprintf("dendrite %s (%s)", s.URL, s.ServerName)
}
