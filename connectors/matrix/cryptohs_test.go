//go:build goolm

package matrix_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

// cryptoHS is a homeserver for contract tests of the bot's encryption
// where no homeserver here has the feature (MSC4190 device creation,
// MSC2409/MSC3202 transaction pushes): it answers the MSC4190 device PUT
// and the key endpoints (/keys/upload, /keys/query, /keys/claim,
// /sendToDevice) as the spec and the MSCs describe, keeping what is
// uploaded so a second, real Olm machine in the test can encrypt to the
// bot, and hands every other request to a stubHomeserver. Two users have
// tokens: the appservice (the bot, or with device masquerading its device
// named by ?device_id=) and one test user.
type cryptoHS struct {
	*httptest.Server
	inner   *stubHomeserver
	asToken string
	bot     id.UserID
	// users maps the test users' tokens to their user and device.
	users map[string]tokenOwner

	mu         sync.Mutex
	devicePuts []devicePut
	logins     int
	syncs      int
	uploads    []keyUpload
	queried    []id.UserID
	deviceKeys map[id.UserID]map[id.DeviceID]json.RawMessage
	otks       map[id.UserID]map[id.DeviceID]map[string]json.RawMessage
	toDevice   []toDeviceSend
	// sessions are the Megolm session IDs of the encrypted events sent.
	sessions []string
}

type tokenOwner struct {
	user   id.UserID
	device id.DeviceID
}

// devicePut is one PUT /_matrix/client/v3/devices/{deviceId}.
type devicePut struct {
	Path, Auth, UserIDParam string
	Body                    map[string]any
	Created                 bool
}

// keyUpload is one POST /keys/upload.
type keyUpload struct {
	User          id.UserID
	Device        id.DeviceID
	Query         url.Values
	HasDeviceKeys bool
	OTKs          int
}

// toDeviceSend is one PUT /sendToDevice/{eventType}/{txnId}.
type toDeviceSend struct {
	Type     string
	Sender   id.UserID
	Messages map[id.UserID]map[id.DeviceID]json.RawMessage
}

func newCryptoHS(t testing.TB, bot id.UserID, asToken string) *cryptoHS {
	s := &cryptoHS{
		inner: newStubHomeserver(t, bot.String()), asToken: asToken, bot: bot,
		users:      map[string]tokenOwner{},
		deviceKeys: map[id.UserID]map[id.DeviceID]json.RawMessage{},
		otks:       map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{},
	}
	target, err := url.Parse(s.inner.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.serve(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// addUser gives a test user (and its device) a token.
func (s *cryptoHS) addUser(token string, user id.UserID, device id.DeviceID) {
	s.mu.Lock()
	s.users[token] = tokenOwner{user, device}
	s.mu.Unlock()
}

// who is the user and device a request acts as, as a homeserver sees it:
// the as_token acts as the bot, as the device ?device_id= (or the unstable
// ?org.matrix.msc3202.device_id=) names (MSC3202 device masquerading).
func (s *cryptoHS) who(r *http.Request) (tokenOwner, bool) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if token == s.asToken {
		device := r.URL.Query().Get("device_id")
		if device == "" {
			device = r.URL.Query().Get("org.matrix.msc3202.device_id")
		}
		return tokenOwner{s.bot, id.DeviceID(device)}, true
	}
	owner, ok := s.users[token]
	return owner, ok
}

func writeJSONTest(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// serve answers the requests this stub owns; false hands the request on.
func (s *cryptoHS) serve(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasSuffix(path, "/sync"):
		s.syncs++
		return false
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/login"):
		s.logins++
		return false
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/_matrix/client/v3/devices/"):
		// MSC4190: "PUT /_matrix/client/v3/devices/{deviceId}" with the
		// appservice's as_token (optionally ?user_id=) creates the device
		// if it does not exist (201) or updates its display name (200);
		// the body is {"display_name": "..."}; the answer is {}.
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		put := devicePut{Path: path, Auth: r.Header.Get("Authorization"), UserIDParam: r.URL.Query().Get("user_id"), Body: body}
		if put.Auth != "Bearer "+s.asToken {
			writeJSONTest(w, http.StatusUnauthorized, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "not an appservice"})
			return true
		}
		device := id.DeviceID(strings.TrimPrefix(path, "/_matrix/client/v3/devices/"))
		put.Created = true
		for _, p := range s.devicePuts {
			put.Created = put.Created && p.Path != path
		}
		s.devicePuts = append(s.devicePuts, put)
		status := http.StatusOK
		if put.Created {
			status = http.StatusCreated
		}
		_ = device
		writeJSONTest(w, status, struct{}{})
		return true
	case strings.HasSuffix(path, "/keys/upload"):
		owner, ok := s.who(r)
		if !ok || owner.device == "" {
			writeJSONTest(w, http.StatusUnauthorized, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "no device"})
			return true
		}
		var req struct {
			DeviceKeys  json.RawMessage            `json:"device_keys"`
			OneTimeKeys map[string]json.RawMessage `json:"one_time_keys"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		up := keyUpload{User: owner.user, Device: owner.device, Query: r.URL.Query(), OTKs: len(req.OneTimeKeys)}
		if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
			up.HasDeviceKeys = true
			if s.deviceKeys[owner.user] == nil {
				s.deviceKeys[owner.user] = map[id.DeviceID]json.RawMessage{}
			}
			s.deviceKeys[owner.user][owner.device] = req.DeviceKeys
		}
		keys := s.otkMap(owner.user, owner.device)
		for k, v := range req.OneTimeKeys {
			keys[k] = v
		}
		s.uploads = append(s.uploads, up)
		writeJSONTest(w, http.StatusOK, map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": len(keys)}})
		return true
	case strings.HasSuffix(path, "/keys/query"):
		var req struct {
			DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		out := map[id.UserID]map[id.DeviceID]json.RawMessage{}
		for user := range req.DeviceKeys {
			s.queried = append(s.queried, user)
			out[user] = map[id.DeviceID]json.RawMessage{}
			for dev, keys := range s.deviceKeys[user] {
				out[user][dev] = keys
			}
		}
		writeJSONTest(w, http.StatusOK, map[string]any{"device_keys": out, "failures": map[string]any{}})
		return true
	case strings.HasSuffix(path, "/keys/claim"):
		var req struct {
			OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
		for user, devs := range req.OneTimeKeys {
			for dev := range devs {
				for k, v := range s.otkMap(user, dev) {
					if out[user] == nil {
						out[user] = map[id.DeviceID]map[string]json.RawMessage{}
					}
					out[user][dev] = map[string]json.RawMessage{k: v}
					delete(s.otks[user][dev], k)
					break
				}
			}
		}
		writeJSONTest(w, http.StatusOK, map[string]any{"one_time_keys": out, "failures": map[string]any{}})
		return true
	case r.Method == http.MethodPut && strings.Contains(path, "/send/m.room.encrypted/"):
		var content struct {
			SessionID string `json:"session_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&content)
		s.sessions = append(s.sessions, content.SessionID)
		writeJSONTest(w, http.StatusOK, map[string]string{"event_id": fmt.Sprintf("$encrypted-%d", len(s.sessions))})
		return true
	case strings.Contains(path, "/sendToDevice/"):
		owner, _ := s.who(r)
		parts := strings.Split(path, "/")
		var req struct {
			Messages map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		s.toDevice = append(s.toDevice, toDeviceSend{Type: parts[len(parts)-2], Sender: owner.user, Messages: req.Messages})
		writeJSONTest(w, http.StatusOK, struct{}{})
		return true
	}
	return false
}

func (s *cryptoHS) otkMap(user id.UserID, dev id.DeviceID) map[string]json.RawMessage {
	if s.otks[user] == nil {
		s.otks[user] = map[id.DeviceID]map[string]json.RawMessage{}
	}
	if s.otks[user][dev] == nil {
		s.otks[user][dev] = map[string]json.RawMessage{}
	}
	return s.otks[user][dev]
}

// snapshot returns copies of what the stub recorded.
func (s *cryptoHS) snapshot() (puts []devicePut, logins, syncs int, uploads []keyUpload, queried []id.UserID, toDevice []toDeviceSend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]devicePut(nil), s.devicePuts...), s.logins, s.syncs,
		append([]keyUpload(nil), s.uploads...), append([]id.UserID(nil), s.queried...),
		append([]toDeviceSend(nil), s.toDevice...)
}

// otkCount is how many one-time keys of a device the stub holds.
func (s *cryptoHS) otkCount(user id.UserID, dev id.DeviceID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.otks[user][dev])
}

// claimAllBut takes a device's one-time keys as other users' claims would,
// leaving keep.
func (s *cryptoHS) claimAllBut(user id.UserID, dev id.DeviceID, keep int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.otks[user][dev]
	for k := range keys {
		if len(keys) <= keep {
			break
		}
		delete(keys, k)
	}
}

// megolmSessions returns the session IDs of the encrypted events sent.
func (s *cryptoHS) megolmSessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sessions...)
}
