//go:build goolm

package matrix_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// These tests publish the bot's cross-signing identity to a homeserver
// that answers as Synapse does for an appservice's users, which no
// homeserver here is (Dendrite asks every user for a password; that path
// is TestBotDeviceCrossSigned): they are tested by contract.
//
// The request, as the spec (client-server API, "POST
// /_matrix/client/v3/keys/device_signing/upload") gives it and the stub
// checks it:
//
//	POST /_matrix/client/v3/keys/device_signing/upload
//	{
//	  "master_key":       {"user_id": "@switchboard:localhost", "usage": ["master"],
//	                       "keys": {"ed25519:<master>": "<master>"},
//	                       "signatures": {"@switchboard:localhost": {"ed25519:<device>": "…"}}},
//	  "self_signing_key": {"user_id": …, "usage": ["self_signing"],
//	                       "keys": {"ed25519:<ssk>": "<ssk>"},
//	                       "signatures": {"@switchboard:localhost": {"ed25519:<master>": "…"}}},
//	  "user_signing_key": {"user_id": …, "usage": ["user_signing"],
//	                       "keys": {"ed25519:<usk>": "<usk>"},
//	                       "signatures": {"@switchboard:localhost": {"ed25519:<master>": "…"}}},
//	  "auth": {…}        // only when answering user-interactive authentication
//	}
//	→ 200 {}
//
// Synapse takes it from an appservice's user without "auth" (its
// interactive-authentication exemption for appservices). A server that
// wants authentication answers 401 with the flows it accepts:
//
//	→ 401 {"flows": [{"stages": ["m.login.sso"]}], "params": {}, "session": "…"}

// xsHS is a cryptoHS with the cross-signing endpoints: it keeps the
// published keys, the signatures uploaded through /keys/signatures/upload
// and the bot's account data, and shows the keys and signatures in
// /keys/query. refuse, when set, is the 401 body every device_signing
// upload gets.
type xsHS struct {
	*httptest.Server
	crypto *cryptoHS
	refuse map[string]any

	mu          sync.Mutex
	publishes   []xsPublish
	published   map[string]json.RawMessage // master_key, self_signing_key, user_signing_key
	sigUploads  []map[id.UserID]map[string]json.RawMessage
	deviceSigs  map[id.DeviceID]map[id.UserID]map[id.KeyID]string
	accountData map[string]json.RawMessage
	accountPuts int
}

// xsPublish is one POST /keys/device_signing/upload.
type xsPublish struct {
	Auth   string // the Authorization header
	Fields map[string]json.RawMessage
}

func newXSHS(t testing.TB, crypto *cryptoHS, refuse map[string]any) *xsHS {
	s := &xsHS{
		crypto: crypto, refuse: refuse,
		deviceSigs:  map[id.DeviceID]map[id.UserID]map[id.KeyID]string{},
		accountData: map[string]json.RawMessage{},
	}
	target, err := url.Parse(crypto.URL)
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

func (s *xsHS) serve(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	const accountData = "/account_data/"
	switch {
	case r.Method == http.MethodPost && path == "/_matrix/client/v3/keys/device_signing/upload":
		var fields map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&fields)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.publishes = append(s.publishes, xsPublish{Auth: r.Header.Get("Authorization"), Fields: fields})
		if s.refuse != nil {
			writeJSONTest(w, http.StatusUnauthorized, s.refuse)
			return true
		}
		if r.Header.Get("Authorization") != "Bearer "+s.crypto.asToken {
			writeJSONTest(w, http.StatusUnauthorized, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "no token"})
			return true
		}
		s.published = fields
		writeJSONTest(w, http.StatusOK, struct{}{})
		return true
	case r.Method == http.MethodPost && path == "/_matrix/client/v3/keys/signatures/upload":
		var req map[id.UserID]map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&req)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sigUploads = append(s.sigUploads, req)
		for keyID, raw := range req[s.crypto.bot] {
			var obj struct {
				DeviceID   id.DeviceID                       `json:"device_id"`
				Signatures map[id.UserID]map[id.KeyID]string `json:"signatures"`
			}
			if json.Unmarshal(raw, &obj) != nil || obj.DeviceID == "" || string(obj.DeviceID) != keyID {
				continue // not a device (a signature of the master key by the device)
			}
			if s.deviceSigs[obj.DeviceID] == nil {
				s.deviceSigs[obj.DeviceID] = map[id.UserID]map[id.KeyID]string{}
			}
			for user, sigs := range obj.Signatures {
				if s.deviceSigs[obj.DeviceID][user] == nil {
					s.deviceSigs[obj.DeviceID][user] = map[id.KeyID]string{}
				}
				for k, v := range sigs {
					s.deviceSigs[obj.DeviceID][user][k] = v
				}
			}
		}
		writeJSONTest(w, http.StatusOK, map[string]any{"failures": map[string]any{}})
		return true
	case strings.Contains(path, accountData) && strings.HasPrefix(path, "/_matrix/client/v3/user/"):
		typ := path[strings.LastIndex(path, accountData)+len(accountData):]
		s.mu.Lock()
		defer s.mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			raw, _ := io.ReadAll(r.Body)
			s.accountData[typ] = raw
			s.accountPuts++
			writeJSONTest(w, http.StatusOK, struct{}{})
		default:
			raw, ok := s.accountData[typ]
			if !ok {
				writeJSONTest(w, http.StatusNotFound, map[string]string{"errcode": "M_NOT_FOUND", "error": "no such account data"})
				return true
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(raw)
		}
		return true
	case strings.HasSuffix(path, "/keys/query"):
		s.query(w, r)
		return true
	}
	return false
}

// query answers /keys/query: the cryptoHS's device keys, with the
// signatures uploaded since merged in, and the bot's published
// cross-signing keys (master_keys, self_signing_keys, and, as Synapse shows
// them to the user themself, user_signing_keys).
func (s *xsHS) query(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.crypto.Config.Handler.ServeHTTP(rec, r)
	var resp map[string]json.RawMessage
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	var devices map[id.UserID]map[id.DeviceID]map[string]json.RawMessage
	_ = json.Unmarshal(resp["device_keys"], &devices)
	s.mu.Lock()
	defer s.mu.Unlock()
	for dev, keys := range devices[s.crypto.bot] {
		extra := s.deviceSigs[dev]
		if extra == nil {
			continue
		}
		var sigs map[id.UserID]map[id.KeyID]string
		_ = json.Unmarshal(keys["signatures"], &sigs)
		if sigs == nil {
			sigs = map[id.UserID]map[id.KeyID]string{}
		}
		for user, m := range extra {
			if sigs[user] == nil {
				sigs[user] = map[id.KeyID]string{}
			}
			for k, v := range m {
				sigs[user][k] = v
			}
		}
		keys["signatures"], _ = json.Marshal(sigs)
	}
	out := map[string]any{"device_keys": devices, "failures": map[string]any{}}
	if _, asked := devices[s.crypto.bot]; asked && s.published != nil {
		out["master_keys"] = map[id.UserID]json.RawMessage{s.crypto.bot: s.published["master_key"]}
		out["self_signing_keys"] = map[id.UserID]json.RawMessage{s.crypto.bot: s.published["self_signing_key"]}
		out["user_signing_keys"] = map[id.UserID]json.RawMessage{s.crypto.bot: s.published["user_signing_key"]}
	}
	writeJSONTest(w, http.StatusOK, out)
}

// botDevice is the bot's device, as the last MSC4190 PUT named it.
func (s *xsHS) botDevice(t *testing.T) id.DeviceID {
	t.Helper()
	puts, _, _, _, _, _ := s.crypto.snapshot()
	require.NotEmpty(t, puts, "the bot created its device")
	return id.DeviceID(strings.TrimPrefix(puts[len(puts)-1].Path, "/_matrix/client/v3/devices/"))
}

// counts returns how many publishes, signature uploads and account-data
// writes the stub saw.
func (s *xsHS) counts() (publishes, sigUploads, accountPuts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.publishes), len(s.sigUploads), s.accountPuts
}

// startXSStub is a bridge in appservice mode with MSC4190 (as it runs on
// Synapse) against an xsHS, with no bot password configured.
func startXSStub(t *testing.T, refuse map[string]any) (*env, *xsHS) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Encryption.Allow = true
	cfg.Encryption.Appservice = true
	cfg.Encryption.MSC4190 = true
	require.Empty(t, cfg.Encryption.BotPassword)
	hs := newXSHS(t, newCryptoHS(t, cfg.BotUserID(), cfg.Appservice.ASToken), refuse)
	cfg.Homeserver.Address = hs.URL
	e := startBridgeDB(t, cfg, dbtest.SQLite(t), nil)
	waitFor(t, 10*time.Second, "connector healthy", func() bool {
		return e.conn.Health(context.Background()).State == bridge.HealthOK
	})
	return e, hs
}

// xsKey is one cross-signing key object of the upload.
type xsKey struct {
	UserID     id.UserID                         `json:"user_id"`
	Usage      []string                          `json:"usage"`
	Keys       map[id.KeyID]id.Ed25519           `json:"keys"`
	Signatures map[id.UserID]map[id.KeyID]string `json:"signatures"`
}

// only returns the object's single key.
func (k xsKey) only(t *testing.T) id.Ed25519 {
	t.Helper()
	require.Len(t, k.Keys, 1)
	for keyID, key := range k.Keys {
		require.Equal(t, id.NewKeyID(id.KeyAlgorithmEd25519, key.String()), keyID, "the key ID names the key")
		return key
	}
	return ""
}

// TestCrossSigningWithoutPassword: on a homeserver that takes an
// appservice user's cross-signing keys without authentication (Synapse),
// a bridge with no encryption.bot_password publishes the bot's three keys
// in one request without "auth", signs its device with the self-signing
// key (/keys/signatures/upload), puts the private keys into secret storage
// under the recovery key and marks its row published; /keys/query then
// shows the device signed. A second start uploads nothing.
func TestCrossSigningWithoutPassword(t *testing.T) {
	e, hs := startXSStub(t, nil)
	ctx := context.Background()
	bot := e.conn.BotUserID()
	var published bool
	waitFor(t, 30*time.Second, "the row marked published and the device signed", func() bool {
		err := e.db.QueryRow(ctx, `SELECT published FROM sb_matrix_cross_signing`).Scan(&published)
		_, sigs, _ := hs.counts()
		return err == nil && published && sigs > 0
	})
	waitFor(t, 10*time.Second, "the attempt to end", func() bool {
		return strings.Contains(e.logs.String(), "The bot's device is cross-signed")
	})

	hs.mu.Lock()
	publishes := append([]xsPublish(nil), hs.publishes...)
	sigUploads := append([]map[id.UserID]map[string]json.RawMessage(nil), hs.sigUploads...)
	accountData := map[string]json.RawMessage{}
	for k, v := range hs.accountData {
		accountData[k] = v
	}
	hs.mu.Unlock()

	// One request, the spec's shape, no "auth".
	require.Len(t, publishes, 1, "published once")
	up := publishes[0]
	assert.Equal(t, "Bearer "+e.cfg.Appservice.ASToken, up.Auth)
	assert.NotContains(t, up.Fields, "auth", "no interactive authentication without being asked")
	var master, self, user xsKey
	require.NoError(t, json.Unmarshal(up.Fields["master_key"], &master))
	require.NoError(t, json.Unmarshal(up.Fields["self_signing_key"], &self))
	require.NoError(t, json.Unmarshal(up.Fields["user_signing_key"], &user))
	for _, k := range []struct {
		key   xsKey
		usage string
	}{{master, "master"}, {self, "self_signing"}, {user, "user_signing"}} {
		assert.Equal(t, bot, k.key.UserID, k.usage)
		assert.Equal(t, []string{k.usage}, k.key.Usage)
	}
	masterKey, sskKey, uskKey := master.only(t), self.only(t), user.only(t)
	assert.NotEqual(t, masterKey, sskKey)
	assert.NotEqual(t, sskKey, uskKey)
	for name, raw := range map[string]json.RawMessage{"self_signing_key": up.Fields["self_signing_key"], "user_signing_key": up.Fields["user_signing_key"]} {
		ok, err := signatures.VerifySignatureJSON(raw, bot, masterKey.String(), masterKey)
		require.NoError(t, err, name)
		assert.True(t, ok, "%s is signed by the master key", name)
	}
	var storedMaster string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT master_key FROM sb_matrix_cross_signing`).Scan(&storedMaster))
	assert.Equal(t, storedMaster, masterKey.String(), "the stored identity is the one published")

	// The device, signed by the self-signing key.
	device := hs.botDevice(t)
	var signedObj json.RawMessage
	for _, req := range sigUploads {
		if raw, ok := req[bot][string(device)]; ok {
			signedObj = raw
		}
	}
	require.NotNil(t, signedObj, "the bot's device was signed")
	ok, err := signatures.VerifySignatureJSON(signedObj, bot, sskKey.String(), sskKey)
	require.NoError(t, err)
	assert.True(t, ok, "the device signature verifies with the published self-signing key")

	// Secret storage: the default key, its metadata, and the three seeds
	// encrypted under it; the recovery key opens the master seed.
	var def struct {
		Key string `json:"key"`
	}
	require.NoError(t, json.Unmarshal(accountData[event.AccountDataSecretStorageDefaultKey.Type], &def))
	require.NotEmpty(t, def.Key, "a default secret-storage key")
	var meta ssss.KeyMetadata
	require.NoError(t, json.Unmarshal(accountData[event.AccountDataSecretStorageKey.Type+"."+def.Key], &meta))
	recovery, err := e.conn.CrossSigningRecoveryKeyForTest(ctx)
	require.NoError(t, err)
	key, err := meta.VerifyRecoveryKey(def.Key, recovery)
	require.NoError(t, err, "the recovery key is the default secret-storage key")
	for _, typ := range []event.Type{event.AccountDataCrossSigningMaster, event.AccountDataCrossSigningSelf, event.AccountDataCrossSigningUser} {
		var enc ssss.EncryptedAccountDataEventContent
		require.NoError(t, json.Unmarshal(accountData[typ.Type], &enc), typ.Type)
		seed, err := enc.Decrypt(typ.Type, key)
		require.NoError(t, err, typ.Type)
		pk, err := olm.NewPKSigningFromSeed(seed)
		require.NoError(t, err)
		want := map[string]id.Ed25519{
			event.AccountDataCrossSigningMaster.Type: masterKey, event.AccountDataCrossSigningSelf.Type: sskKey,
			event.AccountDataCrossSigningUser.Type: uskKey,
		}[typ.Type]
		assert.Equal(t, want, pk.PublicKey(), "%s holds the published key's seed", typ.Type)
	}
	assert.NotContains(t, e.logs.String(), recovery, "the recovery key is not logged")

	// What another client sees.
	cli, err := mautrix.NewClient(hs.URL, bot, e.cfg.Appservice.ASToken)
	require.NoError(t, err)
	keys, err := cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bot: mautrix.DeviceIDList{}}})
	require.NoError(t, err)
	assert.Equal(t, masterKey, firstKey(keys.MasterKeys, bot))
	assert.Equal(t, device, signedDevice(keys, bot), "/keys/query shows the device signed by the self-signing key")

	// A second start: everything is in place; nothing is uploaded.
	publishN, sigN, accountN := hs.counts()
	e.stop()
	e2 := startBridgeDB(t, e.cfg, e.dbo, nil)
	waitFor(t, 30*time.Second, "the restarted bridge to check its cross-signing", func() bool {
		return strings.Contains(e2.logs.String(), "The bot's device is cross-signed")
	})
	p2, s2, a2 := hs.counts()
	assert.Equal(t, publishN, p2, "no new device_signing upload")
	assert.Equal(t, sigN, s2, "no new signature upload")
	assert.Equal(t, accountN, a2, "no new account data")
	assert.Equal(t, device, hs.botDevice(t), "the same device")
	assert.NotContains(t, e2.logs.String(), "Generated the bot's cross-signing keys")
	assert.NotContains(t, e2.logs.String(), "not cross-signed")
}

// TestCrossSigningAuthRefusedReported: a homeserver that answers the
// upload with interactive authentication the bot cannot do (no
// m.login.password or m.login.dummy flow, or m.login.password with no
// password configured) leaves the device unverified: nothing more is
// uploaded, the row stays unpublished, and the connector logs a warning
// with ErrCrossSigningAuth naming the stages asked for. It keeps running,
// and the failed attempt is not repeated at once (the next waits a
// minute): over three scans of the crypto loop, one request.
func TestCrossSigningAuthRefusedReported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flows []map[string]any
		want  []string
	}{
		{"sso or recaptcha and terms", []map[string]any{
			{"stages": []string{"m.login.sso"}},
			{"stages": []string{"m.login.recaptcha", "m.login.terms"}},
		}, []string{"it asks for m.login.sso or m.login.recaptcha+m.login.terms"}},
		{"password without one configured", []map[string]any{
			{"stages": []string{"m.login.password"}},
		}, []string{"it asks for m.login.password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, hs := startXSStub(t, map[string]any{"flows": tc.flows, "params": map[string]any{}, "session": "uia-session"})
			ctx := context.Background()
			waitFor(t, 30*time.Second, "the refused upload reported", func() bool {
				return strings.Contains(e.logs.String(), "The bot's device is not cross-signed")
			})
			var warned map[string]any
			sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var line map[string]any
				if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line["message"].(string), "The bot's device is not cross-signed") {
					warned = line
				}
			}
			require.NotNil(t, warned)
			assert.Equal(t, "warn", warned["level"])
			errText, _ := warned["error"].(string)
			assert.Contains(t, errText, matrix.ErrCrossSigningAuth.Error())
			for _, w := range tc.want {
				assert.Contains(t, errText, w, "the stages asked for are named")
			}

			// Three scans of the crypto loop (every two seconds) later:
			// still the one request, and the bridge runs.
			time.Sleep(7 * time.Second)
			publishes, sigs, _ := hs.counts()
			assert.Equal(t, 1, publishes, "no retry in a tight loop")
			assert.Zero(t, sigs, "the device is not signed")
			hs.mu.Lock()
			for _, p := range hs.publishes {
				assert.NotContains(t, p.Fields, "auth")
			}
			for typ := range hs.accountData {
				assert.NotContains(t, typ, "m.cross_signing", "no keys in secret storage")
			}
			hs.mu.Unlock()
			var published bool
			require.NoError(t, e.db.QueryRow(ctx, `SELECT published FROM sb_matrix_cross_signing`).Scan(&published))
			assert.False(t, published)
			assert.Equal(t, bridge.HealthOK, e.conn.Health(ctx).State, "the connector keeps running")
			assert.Equal(t, 1, strings.Count(e.logs.String(), "The bot's device is not cross-signed"))
		})
	}
}
