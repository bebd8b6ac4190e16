//go:build goolm

package matrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// These tests speak to the connector exactly as MSC4190 (appservice device
// creation), MSC2409 (ephemeral and to-device events in transactions) and
// MSC3202 (one-time-key counts, fallback key types and device lists in
// transactions) specify: no homeserver that runs here implements them
// (Dendrite has none), so they are tested by contract, not against a live
// Synapse.

// cryptoStubEnv is a bridge with encryption in appservice mode
// (encryption.appservice and encryption.msc4190) on a cryptoHS, and a
// second, real goolm Olm machine for @alice:localhost that shares Megolm
// sessions with the bot the way a client does.
type cryptoStubEnv struct {
	*env
	hs    *cryptoHS
	alice *crypto.OlmMachine
}

const (
	aliceUser   = id.UserID("@alice:localhost")
	aliceDevice = id.DeviceID("ALICEDEV")
)

func startCryptoStub(t testing.TB, configure ...func(*config.Config)) *cryptoStubEnv {
	t.Helper()
	return startCryptoStubDB(t, dbtest.SQLite(t), configure...)
}

// startCryptoStubDB is startCryptoStub on any database.
func startCryptoStubDB(t testing.TB, dbo database.Options, configure ...func(*config.Config)) *cryptoStubEnv {
	t.Helper()
	cfg := testConfig(t)
	cfg.Encryption.Allow = true
	cfg.Encryption.Appservice = true
	cfg.Encryption.MSC4190 = true
	for _, fn := range configure {
		fn(cfg)
	}
	hs := newCryptoHS(t, cfg.BotUserID(), cfg.Appservice.ASToken)
	cfg.Homeserver.Address = hs.URL
	e := startBridgeDB(t, cfg, dbo, nil)
	waitFor(t, 10*time.Second, "connector healthy", func() bool {
		return e.conn.Health(context.Background()).State == bridge.HealthOK
	})
	e.conn.SetLegTimerHandler(matrix.NewRouterLegTimer(e.router))
	require.Equal(t, stubPortal, e.loopPortal(t, aliceUser, bridge.Sender{ID: "contact-1", DisplayName: "Contact"}))

	hs.addUser("alice-token", aliceUser, aliceDevice)
	cli, err := mautrix.NewClient(hs.URL, aliceUser, "alice-token")
	require.NoError(t, err)
	cli.DeviceID = aliceDevice
	log := zerolog.Nop()
	cli.Log = log
	ss := mautrix.NewMemoryStateStore()
	alice := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), ss.(crypto.StateStore))
	ctx := context.Background()
	require.NoError(t, alice.Load(ctx))
	require.NoError(t, alice.ShareKeys(ctx, -1))
	return &cryptoStubEnv{env: e, hs: hs, alice: alice}
}

// botDevice is the bot's device ID, as the bot created it.
func (e *cryptoStubEnv) botDevice(t *testing.T) id.DeviceID {
	t.Helper()
	puts, _, _, _, _, _ := e.hs.snapshot()
	require.NotEmpty(t, puts, "the bot created its device")
	return id.DeviceID(strings.TrimPrefix(puts[0].Path, "/_matrix/client/v3/devices/"))
}

// shareRoomKey makes alice's machine share a new Megolm session for the
// portal with the bot's device and returns the Olm-encrypted m.room_key
// content it sent to the bot (as the stub's /sendToDevice received it).
func (e *cryptoStubEnv) shareRoomKey(t *testing.T) json.RawMessage {
	t.Helper()
	ctx := context.Background()
	_, _, _, _, _, before := e.hs.snapshot()
	require.NoError(t, e.alice.ShareGroupSession(ctx, stubPortal, []id.UserID{e.conn.BotUserID()}))
	_, _, _, _, _, after := e.hs.snapshot()
	require.Greater(t, len(after), len(before), "alice sent the room key")
	sent := after[len(after)-1]
	require.Equal(t, "m.room.encrypted", sent.Type)
	content := sent.Messages[e.conn.BotUserID()][e.botDevice(t)]
	require.NotEmpty(t, content, "the room key went to the bot's device")
	return content
}

// megolmEvent is an m.room.encrypted timeline event alice's machine
// encrypted for the portal.
func (e *cryptoStubEnv) megolmEvent(t *testing.T, eventID, body string) string {
	t.Helper()
	enc, err := e.alice.EncryptMegolmEvent(context.Background(), stubPortal, event.EventMessage,
		&event.MessageEventContent{MsgType: event.MsgText, Body: body})
	require.NoError(t, err)
	return jsonOf(t, map[string]any{
		"event_id": eventID, "room_id": stubPortal, "sender": aliceUser, "type": "m.room.encrypted",
		"origin_server_ts": time.Now().UnixMilli(), "content": enc,
	})
}

// delivered returns the bodies the loopback leg received.
func delivered(e *env) []string {
	var out []string
	for _, s := range e.lb.Sent() {
		if s.Delivery != nil && s.Delivery.Event != nil && s.Delivery.Event.Content != nil {
			out = append(out, s.Delivery.Event.Content.Body)
		}
	}
	return out
}

// TestMSC4190DeviceCreation: with encryption.msc4190 the bot's device is
// created with MSC4190's request, never by logging in, and the bot then
// acts as that device with the as_token and ?device_id= (MSC3202 device
// masquerading); with encryption.appservice no /sync runs.
//
// MSC4190's request, as the stub checks it:
//
//	PUT /_matrix/client/v3/devices/{deviceId}
//	Authorization: Bearer <as_token>
//	{"display_name": "switchboard bridge"}
//	→ 201 {} (created) or 200 {} (it existed)
func TestMSC4190DeviceCreation(t *testing.T) {
	e := startCryptoStub(t)
	puts, logins, syncs, uploads, _, _ := e.hs.snapshot()
	require.Len(t, puts, 1)
	device := e.botDevice(t)
	assert.Regexp(t, `^/_matrix/client/v3/devices/[A-Z0-9]{10}$`, puts[0].Path)
	assert.Equal(t, "Bearer "+e.cfg.Appservice.ASToken, puts[0].Auth)
	assert.Equal(t, map[string]any{"display_name": "switchboard bridge"}, puts[0].Body)
	assert.True(t, puts[0].Created)
	assert.Zero(t, logins, "no m.login.application_service")
	assert.Zero(t, syncs, "no /sync loop in appservice mode")

	var botUploads []keyUpload
	for _, up := range uploads {
		if up.User == e.conn.BotUserID() {
			botUploads = append(botUploads, up)
		}
	}
	require.NotEmpty(t, botUploads)
	assert.True(t, botUploads[0].HasDeviceKeys, "device keys uploaded for the new device")
	assert.GreaterOrEqual(t, botUploads[0].OTKs, 50, "one-time keys uploaded")
	for _, up := range botUploads {
		assert.Equal(t, device, up.Device)
		assert.Equal(t, string(device), up.Query.Get("org.matrix.msc3202.device_id"))
	}

	// A restart reuses the device: the PUT names it again (200).
	e.stop()
	e2 := startBridgeDB(t, e.cfg, e.dbo, nil)
	waitFor(t, 10*time.Second, "connector healthy again", func() bool {
		return e2.conn.Health(context.Background()).State == bridge.HealthOK
	})
	puts, logins, syncs, _, _, _ = e.hs.snapshot()
	require.Len(t, puts, 2)
	assert.Equal(t, puts[0].Path, puts[1].Path, "the same device after a restart")
	assert.False(t, puts[1].Created)
	assert.Zero(t, logins)
	assert.Zero(t, syncs)
}

// TestMSC4190Fallback: a homeserver without MSC4190 answers the device PUT
// with 404 (Synapse: M_NOT_FOUND for a device that does not exist; others
// M_UNRECOGNIZED); the bot then logs in with m.login.application_service.
// (On Dendrite, TestMSC4190FallbackOnDendrite.)
func TestMSC4190Fallback(t *testing.T) {
	for _, answer := range []struct {
		name   string
		status int
		body   string
	}{
		// Distinct names: a '#' in the database path would end SQLite's URI.
		{"404 not found", http.StatusNotFound, `{"errcode":"M_NOT_FOUND","error":"Unknown device"}`},
		{"404 unrecognized", http.StatusNotFound, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`},
		{"405 unrecognized", http.StatusMethodNotAllowed, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`},
	} {
		t.Run(answer.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Encryption.Allow = true
			cfg.Encryption.MSC4190 = true
			inner := newStubHomeserver(t, cfg.BotUserID().String())
			target, err := url.Parse(inner.URL)
			require.NoError(t, err)
			proxy := httputil.NewSingleHostReverseProxy(target)
			var mu sync.Mutex
			var puts, logins int
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/devices/"):
					mu.Lock()
					puts++
					mu.Unlock()
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(answer.status)
					_, _ = w.Write([]byte(answer.body))
				case strings.HasSuffix(r.URL.Path, "/login"):
					mu.Lock()
					logins++
					mu.Unlock()
					writeJSONTest(w, http.StatusOK, map[string]string{"user_id": cfg.BotUserID().String(), "access_token": "device-token", "device_id": "LOGINDEVICE"})
				case strings.HasSuffix(r.URL.Path, "/sync"):
					<-r.Context().Done()
				default:
					proxy.ServeHTTP(w, r)
				}
			}))
			t.Cleanup(hs.Close)
			cfg.Homeserver.Address = hs.URL
			e := startBridge(t, cfg, "", nil)
			waitFor(t, 10*time.Second, "the bot logged in after the PUT failed", func() bool {
				return e.conn.Health(context.Background()).State == bridge.HealthOK
			})
			e.stop()
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, 1, puts)
			assert.Equal(t, 1, logins)
		})
	}
}

// TestRoomKeyInTransaction: an m.room_key, Olm-encrypted to the bot's
// device by alice's real Olm machine, arrives as a to-device event of a
// transaction (MSC2409; Synapse's unstable name and the stable one); a
// later Megolm event in the portal then decrypts and is bridged, without
// any /sync. The shape of the to-device event in the transaction:
//
//	{"de.sorunome.msc2409.to_device": [{
//	   "type": "m.room.encrypted", "sender": "@alice:localhost",
//	   "to_user_id": "@switchboard:localhost", "to_device_id": "<bot device>",
//	   "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": …, "ciphertext": {…}}}]}
//
// (or "to_device": [...]).
func TestRoomKeyInTransaction(t *testing.T) {
	for _, field := range []string{"de.sorunome.msc2409.to_device", "to_device"} {
		t.Run(field, func(t *testing.T) {
			e := startCryptoStub(t)
			h := e.conn.AppserviceHandler()
			token := e.cfg.Appservice.HSToken
			key := e.shareRoomKey(t)
			toDevice := map[string]any{
				"type": "m.room.encrypted", "sender": aliceUser,
				"to_user_id": e.conn.BotUserID(), "to_device_id": e.botDevice(t), "content": key,
			}
			require.Equal(t, http.StatusOK, putBody(t, h, token, "key-1", map[string]any{field: []any{toDevice}}))
			require.Equal(t, http.StatusOK, putRaw(t, h, token, "msg-1", e.megolmEvent(t, "$enc-1", "hello through a pushed room key")))
			waitFor(t, 10*time.Second, "the decrypted message on the loopback leg", func() bool {
				return slices.Contains(delivered(e.env), "hello through a pushed room key")
			})
			_, _, syncs, _, _, _ := e.hs.snapshot()
			assert.Zero(t, syncs, "no /sync")
			assert.NotContains(t, e.logs.String(), "hello through a pushed room key", "no plaintext in the log")

			// MSC3202 device lists: a change for alice (a device the bot
			// tracks now) makes the bot query her keys again.
			_, _, _, _, before, _ := e.hs.snapshot()
			dlField := "org.matrix.msc3202.device_lists"
			if field == "to_device" {
				dlField = "device_lists"
			}
			require.Equal(t, http.StatusOK, putBody(t, h, token, "dl-1", map[string]any{dlField: map[string]any{"changed": []string{string(aliceUser)}, "left": []string{}}}))
			_, _, _, _, after, _ := e.hs.snapshot()
			assert.Equal(t, []id.UserID{aliceUser}, after[len(before):], "the bot refreshed alice's devices")
		})
	}
}

// TestRoomKeyAndEventInOneTransaction: a transaction carrying both the
// room key (to-device) and the Megolm event it unlocks is bridged at once:
// the to-device part is handled first.
func TestRoomKeyAndEventInOneTransaction(t *testing.T) {
	e := startCryptoStub(t)
	h := e.conn.AppserviceHandler()
	key := e.shareRoomKey(t)
	code := putBody(t, h, e.cfg.Appservice.HSToken, "both", map[string]any{
		"events": []json.RawMessage{json.RawMessage(e.megolmEvent(t, "$enc-both", "key and message together"))},
		"de.sorunome.msc2409.to_device": []any{map[string]any{
			"type": "m.room.encrypted", "sender": aliceUser,
			"to_user_id": e.conn.BotUserID(), "to_device_id": e.botDevice(t), "content": key,
		}},
	})
	require.Equal(t, http.StatusOK, code)
	assert.Zero(t, keptCount(t, e.env, ""), "nothing waited for its key")
	waitFor(t, 10*time.Second, "the message on the loopback leg", func() bool {
		return slices.Contains(delivered(e.env), "key and message together")
	})
}

// TestToDeviceForAnotherDeviceIgnored: a transaction is authenticated by
// the hs_token, but a to-device event in it is only used when it is
// addressed to the bot's own user and device: the same room key addressed
// elsewhere (another device, another user, no address) is dropped, so the
// message stays undecryptable; addressed to the bot, it unlocks the kept
// message.
func TestToDeviceForAnotherDeviceIgnored(t *testing.T) {
	e := startCryptoStub(t)
	h := e.conn.AppserviceHandler()
	token := e.cfg.Appservice.HSToken
	key := e.shareRoomKey(t)
	bot, device := e.conn.BotUserID(), e.botDevice(t)
	for i, addr := range []map[string]any{
		{"to_user_id": bot, "to_device_id": "OTHERDEVICE"},
		{"to_user_id": "@mallory:localhost", "to_device_id": device},
		{"to_user_id": bot},
		{},
	} {
		evt := map[string]any{"type": "m.room.encrypted", "sender": aliceUser, "content": key}
		for k, v := range addr {
			evt[k] = v
		}
		require.Equal(t, http.StatusOK, putBody(t, h, token, fmt.Sprintf("wrong-%d", i), map[string]any{"to_device": []any{evt}}))
	}
	require.Equal(t, http.StatusOK, putRaw(t, h, token, "msg", e.megolmEvent(t, "$enc-kept", "only for the bot's device")))
	assert.Equal(t, 1, keptCount(t, e.env, "WHERE event_id=$1", "$enc-kept"), "the message waits for its key")
	assert.NotContains(t, delivered(e.env), "only for the bot's device")

	require.Equal(t, http.StatusOK, putBody(t, h, token, "right", map[string]any{"to_device": []any{map[string]any{
		"type": "m.room.encrypted", "sender": aliceUser, "to_user_id": bot, "to_device_id": device, "content": key,
	}}}))
	waitFor(t, 15*time.Second, "the kept message bridged once its key came", func() bool {
		return slices.Contains(delivered(e.env), "only for the bot's device")
	})
}

// TestOTKCountsInTransaction: MSC3202 one-time-key counts for the bot's
// device below half of what it keeps make it upload new keys; counts for
// another of its devices, or another user, change nothing. The shape
// (Synapse sends both unstable names; the stable one is also accepted):
//
//	{"org.matrix.msc3202.device_one_time_keys_count": {"@switchboard:localhost": {"<device>": {"signed_curve25519": 3}}}}
//	{"org.matrix.msc3202.device_one_time_key_counts": {…same…}}
//	{"device_one_time_keys_count": {…same…}}
//
// and unused fallback key types, accepted alongside:
//
//	{"org.matrix.msc3202.device_unused_fallback_key_types": {"@switchboard:localhost": {"<device>": ["signed_curve25519"]}}}
func TestOTKCountsInTransaction(t *testing.T) {
	for _, field := range []string{
		"org.matrix.msc3202.device_one_time_keys_count",
		"org.matrix.msc3202.device_one_time_key_counts",
		"device_one_time_keys_count",
	} {
		t.Run(field, func(t *testing.T) {
			e := startCryptoStub(t)
			h := e.conn.AppserviceHandler()
			token := e.cfg.Appservice.HSToken
			bot, device := e.conn.BotUserID(), e.botDevice(t)
			uploadsWithKeys := func() int {
				_, _, _, uploads, _, _ := e.hs.snapshot()
				n := 0
				for _, up := range uploads {
					if up.User == bot && up.OTKs > 0 {
						n++
					}
				}
				return n
			}
			require.GreaterOrEqual(t, e.hs.otkCount(bot, device), 50)
			// Other devices claimed most of the bot's keys.
			e.hs.claimAllBut(bot, device, 3)
			before := uploadsWithKeys()

			for i, counts := range []map[string]any{
				{string(bot): map[string]any{"OTHERDEVICE": map[string]int{"signed_curve25519": 0}}},
				{"@alice:localhost": map[string]any{string(aliceDevice): map[string]int{"signed_curve25519": 0}}},
			} {
				require.Equal(t, http.StatusOK, putBody(t, h, token, fmt.Sprintf("other-%d", i), map[string]any{field: counts}))
			}
			assert.Equal(t, before, uploadsWithKeys(), "counts of other devices change nothing")

			require.Equal(t, http.StatusOK, putBody(t, h, token, "mine", map[string]any{
				field: map[string]any{string(bot): map[string]any{string(device): map[string]int{"signed_curve25519": 3}}},
				"org.matrix.msc3202.device_unused_fallback_key_types": map[string]any{string(bot): map[string]any{string(device): []string{"signed_curve25519"}}},
			}))
			assert.Equal(t, before+1, uploadsWithKeys(), "the bot uploaded new one-time keys")
			assert.GreaterOrEqual(t, e.hs.otkCount(bot, device), 50, "topped up to half of what it keeps")
		})
	}
}

// TestMalformedEncryptionTrafficSkipped: a part of a transaction that is
// not what the MSCs say is skipped; the events of the transaction are
// still bridged and the transaction acknowledged.
func TestMalformedEncryptionTrafficSkipped(t *testing.T) {
	e := startCryptoStub(t)
	h := e.conn.AppserviceHandler()
	code := putBody(t, h, e.cfg.Appservice.HSToken, "bad", map[string]any{
		"events":                          []any{textEvent("$plain", stubPortal, string(aliceUser), "plain after garbage")},
		"to_device":                       5,
		"org.matrix.msc3202.device_lists": "changed",
		"device_one_time_keys_count":      []int{1},
		"device_unused_fallback_key_types": map[string]any{
			string(e.conn.BotUserID()): "signed_curve25519",
		},
		"ephemeral": "typing",
	})
	require.Equal(t, http.StatusOK, code)
	waitFor(t, 10*time.Second, "the event behind the garbage", func() bool {
		return slices.Contains(delivered(e.env), "plain after garbage")
	})
}

// TestEncryptionTrafficKeptForTheOwner: of two processes on one database,
// the one that does not own the bot device keeps the encryption traffic a
// transaction brings it (sb_matrix_crypto_inbox) and the owner feeds it to
// its machine: a room key and the Megolm event it unlocks, both pushed to
// the other process, are bridged.
//
// On SQLite, and on PostgreSQL when SWITCHBOARD_TEST_POSTGRES is set.
func TestEncryptionTrafficKeptForTheOwner(t *testing.T) {
	dbtest.Each(t, testEncryptionTrafficKeptForTheOwner)
}

func testEncryptionTrafficKeptForTheOwner(t *testing.T, dbo database.Options) {
	e := startCryptoStubDB(t, dbo)
	cfg2 := *e.cfg
	cfg2.Appservice.Listen = "127.0.0.1:0"
	other := startBridgeDB(t, &cfg2, e.dbo, nil)
	waitFor(t, 10*time.Second, "the second process leaves encryption to the owner", func() bool {
		return strings.Contains(other.conn.Health(context.Background()).Message, "another process")
	})
	h := other.conn.AppserviceHandler()
	token := e.cfg.Appservice.HSToken
	key := e.shareRoomKey(t)
	require.Equal(t, http.StatusOK, putBody(t, h, token, "key", map[string]any{"de.sorunome.msc2409.to_device": []any{map[string]any{
		"type": "m.room.encrypted", "sender": aliceUser,
		"to_user_id": e.conn.BotUserID(), "to_device_id": e.botDevice(t), "content": key,
	}}}))
	assert.Contains(t, other.logs.String(), "Kept encryption traffic for the process that owns the bot device")
	require.Equal(t, http.StatusOK, putRaw(t, h, token, "msg", e.megolmEvent(t, "$enc-other", "through the other process")))
	waitFor(t, 20*time.Second, "the message bridged by the owner", func() bool {
		return slices.Contains(append(delivered(e.env), delivered(other)...), "through the other process")
	})
	var kept int
	require.NoError(t, e.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM sb_matrix_crypto_inbox`).Scan(&kept))
	assert.Zero(t, kept, "the owner took what was kept")
}

// TestNoPushesTold: with encryption.appservice on a homeserver that does
// not push encryption traffic (transactions without any MSC2409 field, as
// Dendrite sends them), the admins are told once after ten transactions;
// a homeserver that sends the fields (Synapse includes them, empty lists
// too, in every transaction) is not reported.
func TestNoPushesTold(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first map[string]any
		told  int
	}{
		{"dendrite-like", map[string]any{}, 1},
		{"synapse-like", map[string]any{"de.sorunome.msc2409.ephemeral": []any{}, "de.sorunome.msc2409.to_device": []any{}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startCryptoStub(t)
			var told []string
			var mu sync.Mutex
			e.conn.SetAdminNotifier(func(_ context.Context, key, text string) {
				mu.Lock()
				told = append(told, key+": "+text)
				mu.Unlock()
			})
			h := e.conn.AppserviceHandler()
			tc.first["events"] = []any{textEvent("$first", stubPortal, string(aliceUser), "first")}
			require.Equal(t, http.StatusOK, putBody(t, h, e.cfg.Appservice.HSToken, "first", tc.first))
			for i := range 12 {
				require.Equal(t, http.StatusOK, putBody(t, h, e.cfg.Appservice.HSToken, fmt.Sprintf("plain-%d", i), map[string]any{
					"events": []any{textEvent(fmt.Sprintf("$plain-%d", i), stubPortal, string(aliceUser), "plain")},
				}))
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, told, tc.told, told)
			if tc.told > 0 {
				assert.Contains(t, told[0], "matrix-no-msc2409: ")
				assert.Contains(t, told[0], "encryption.appservice: false")
			}
		})
	}
}

// txnParts are the fields a transaction may carry besides events (MSC2409,
// MSC3202; unstable and stable names).
var txnParts = []string{
	"ephemeral", "de.sorunome.msc2409.ephemeral", "to_device", "de.sorunome.msc2409.to_device",
	"device_lists", "org.matrix.msc3202.device_lists",
	"device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count", "org.matrix.msc3202.device_one_time_key_counts",
	"device_unused_fallback_key_types", "org.matrix.msc3202.device_unused_fallback_key_types",
}

// FuzzTransactionParts: any JSON in any of the parts a transaction may
// carry besides events never yields a 5xx or a panic, in appservice mode.
func FuzzTransactionParts(f *testing.F) {
	e := startCryptoStub(f)
	h := e.conn.AppserviceHandler()
	bot := string(e.conn.BotUserID())
	for i := range txnParts {
		for _, seed := range []string{
			`[]`, `{}`, `null`, `5`, `"x"`,
			`[{"type":"m.typing","room_id":"!portal:localhost","content":{"user_ids":["@alice:localhost"]}}]`,
			`[{"type":"m.receipt","room_id":"!portal:localhost","content":{"$e":{"m.read":{"@alice:localhost":{"ts":1}}}}}]`,
			`[{"type":"m.room.encrypted","sender":"@alice:localhost","to_user_id":"` + bot + `","to_device_id":"X","content":{"algorithm":"m.olm.v1.curve25519-aes-sha2","sender_key":"k","ciphertext":{}}}]`,
			`{"changed":["@alice:localhost"],"left":[]}`,
			`{"` + bot + `":{"X":{"signed_curve25519":0}}}`,
			`{"` + bot + `":{"X":["signed_curve25519"]}}`,
		} {
			f.Add(uint8(i), seed)
		}
	}
	var txn atomic.Int64
	f.Fuzz(func(t *testing.T, field uint8, raw string) {
		if !json.Valid([]byte(raw)) {
			t.Skip("not JSON")
		}
		body := `{"events":[],"` + txnParts[int(field)%len(txnParts)] + `":` + raw + `}`
		req := httptest.NewRequest(http.MethodPut, fmt.Sprintf("/_matrix/app/v1/transactions/fz%d", txn.Add(1)), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.cfg.Appservice.HSToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Less(t, rec.Code, 500, "no 5xx for what a transaction carries")
	})
}

// TestMemberChangeRotatesSession: in appservice mode no /sync tells the
// Olm machine about membership changes; a member event of a transaction
// does, so the next message to an encrypted portal goes out in a new
// Megolm session that the new member's devices get (without it, a user
// who joins could not read what the ghosts send next).
func TestMemberChangeRotatesSession(t *testing.T) {
	e := startCryptoStub(t, func(cfg *config.Config) { cfg.Encryption.Default = true })
	h := e.conn.AppserviceHandler()
	token := e.cfg.Appservice.HSToken
	ctx := context.Background()
	bot := string(e.conn.BotUserID())
	require.Equal(t, http.StatusOK, putRaw(t, h, token, "enc", jsonOf(t, stateEvent("$encryption", stubPortal, bot, "m.room.encryption",
		map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}))))
	send := func(n int) {
		require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
			Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: bridge.RemoteID(fmt.Sprintf("lb-%d", n)),
			Sender:  bridge.Sender{ID: "contact-1", DisplayName: "Contact"},
			Content: &bridge.Content{Type: bridge.MsgText, Body: fmt.Sprintf("secret %d", n)},
		}))
		waitFor(t, 10*time.Second, fmt.Sprintf("encrypted message %d sent", n), func() bool {
			return len(e.hs.megolmSessions()) == n
		})
	}
	send(1)
	send(2)
	sessions := e.hs.megolmSessions()
	require.Equal(t, sessions[0], sessions[1], "one session while nobody joins")

	join := stateEvent("$bob-join", stubPortal, "@bob:localhost", "m.room.member", map[string]any{"membership": "join"})
	join["state_key"] = "@bob:localhost"
	require.Equal(t, http.StatusOK, putRaw(t, h, token, "join", jsonOf(t, join)))
	send(3)
	sessions = e.hs.megolmSessions()
	assert.NotEqual(t, sessions[1], sessions[2], "a new session after the membership change")
}
