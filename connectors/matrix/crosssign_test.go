//go:build goolm

package matrix_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/crypto/utils"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// TestBotDeviceCrossSigned: the bot cross-signs its own device. Dendrite
// v0.13.8 asks every user, the appservice's bot too, for its password
// (user-interactive auth, m.login.password) before it takes cross-signing
// keys, and the bot has none: the bridge says so and keeps its device
// unverified. Once an admin has given the bot a password (Dendrite's admin
// API) and the bridge has it, the keys the bridge generated the first time
// are published: /keys/query shows the master and self-signing keys and
// the self-signing key's signature on the bot's device, and matrix-js-sdk
// sees that device signed by its owner. A restart keeps the same master
// key. An admin sees the recovery key once, in an encrypted DM; it unlocks
// the bot's secret storage, and it appears nowhere in the clear: not in
// the bridge's log or database, not in the homeserver's files.
func TestBotDeviceCrossSigned(t *testing.T) {
	e := startWithDendrite(t)
	withRecoveryKeyCommand(t, e)
	bot := e.conn.BotUserID().String()
	asToken := e.cfg.Appservice.ASToken

	waitFor(t, 30*time.Second, "the refused upload to be logged", func() bool {
		return strings.Contains(e.logs.String(), "The bot's device is not cross-signed")
	})
	assert.Contains(t, e.logs.String(), "m.login.password", "the log names the stage Dendrite asks for")
	keys := queryKeys(t, e.hs, asToken, bot)
	assert.Empty(t, keys.MasterKeys[id.UserID(bot)].Keys, "nothing published without the password")
	generated := storedMasterKey(t, e)
	require.NotEmpty(t, generated, "the keys were generated and stored before the upload")

	password := "bot-" + randomToken(t)[:16]
	e.hs.SetPasswordAsAdmin(t, bot, password)
	e.conn.SetCrossSigningPassword(password)
	var device id.DeviceID
	waitFor(t, 30*time.Second, "the bot's device signed by its self-signing key", func() bool {
		keys = queryKeys(t, e.hs, asToken, bot)
		device = signedDevice(keys, id.UserID(bot))
		return device != ""
	})
	master := firstKey(keys.MasterKeys, id.UserID(bot))
	assert.Equal(t, generated, master.String(), "the keys generated first are the ones published")
	selfSigning := keys.SelfSigningKeys[id.UserID(bot)]
	assert.Contains(t, selfSigning.Signatures[id.UserID(bot)], id.NewKeyID(id.KeyAlgorithmEd25519, master.String()),
		"the self-signing key is signed by the master key")
	assert.NotEmpty(t, keys.UserSigningKeys[id.UserID(bot)].Keys, "the user-signing key is published too (Dendrite shows it to its owner)")

	// An independent client sees the bot's device cross-signed by its owner.
	sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	var status struct {
		Known         bool `json:"known"`
		SignedByOwner bool `json:"signed_by_owner"`
	}
	ctx := context.Background()
	// As a user would meet it: in a DM with the bot. The client fetches
	// the bot's keys in the background, between syncs; ask until it has.
	aliceDM := js.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bot}, IsDirect: true})
	js.WaitMember(t, aliceDM, bot, "join", 20*time.Second)
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		require.NoError(t, js.Call(ctx, "device_verification", map[string]any{"user": bot, "device": string(device)}, &status))
		if status.SignedByOwner || time.Now().After(deadline) {
			break
		}
	}
	if !assert.True(t, status.SignedByOwner, "matrix-js-sdk sees the bot's device signed by its owner") {
		var asAlice map[string]any
		e.hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/keys/query", sess.AccessToken,
			map[string]any{"device_keys": map[string]any{bot: []string{}}}, &asAlice)
		t.Logf("/keys/query for the bot as alice: %v", asAlice)
		t.Logf("js stderr: %s", js.Stderr())
	}

	// The recovery key: not in an unencrypted DM, then once in an encrypted one.
	admin := e.newUser(t, "admin")
	plainDM := admin.createRoom(t, map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"})
	waitFor(t, 15*time.Second, "bot to join the plain DM", func() bool { return admin.membership(t, plainDM, bot) == "join" })
	cmd := admin.sendText(t, plainDM, "recovery-key")
	reply := admin.waitEvent(t, plainDM, "answer in the plain DM", func(evt roomEvent) bool {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		inReply, _ := rel["m.in_reply_to"].(map[string]any)
		return evt.Sender == bot && inReply["event_id"] == cmd
	})
	assert.Contains(t, body(reply), "not encrypted")

	ajs := jsclient.StartLogin(t, e.hs.URL, "admin", "password-admin", "ADMINJS")
	dm := ajs.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bot}, IsDirect: true})
	ajs.WaitMember(t, dm, bot, "join", 20*time.Second)
	ask := func(want string) string {
		t.Helper()
		require.True(t, ajs.Send(t, dm, "recovery-key").Encrypted)
		var answer jsclient.Message
		for i := 0; i < 3 && !strings.Contains(answer.Body, want); i++ {
			answer = ajs.WaitMessageFrom(t, dm, bot, 30*time.Second)
			assert.True(t, answer.Decrypted, "the bot's answer was encrypted")
		}
		require.Contains(t, answer.Body, want)
		return answer.Body
	}
	first := ask("Recovery key")
	recoveryKey := extractRecoveryKey(t, first)
	assert.Contains(t, ask("already shown"), "not shown again")

	// The key is the real one: it opens the bot's secret storage, which
	// holds the private half of the published master key.
	assertUnlocksSecretStorage(t, e, recoveryKey, master)

	// Restart: the same master key, no new upload (no password given).
	e.stop()
	e2 := startBridgeDB(t, e.cfg, e.dbo, nil)
	e2.hs = e.hs
	withRecoveryKeyCommand(t, e2)
	waitFor(t, 30*time.Second, "the restarted bridge to check its cross-signing", func() bool {
		return strings.Contains(e2.logs.String(), "The bot's device is cross-signed")
	})
	after := queryKeys(t, e.hs, asToken, bot)
	assert.Equal(t, master, firstKey(after.MasterKeys, id.UserID(bot)), "a restart keeps the master key")
	assert.Equal(t, device, signedDevice(after, id.UserID(bot)), "the device stays signed")
	assert.NotContains(t, e2.logs.String(), "Generated the bot's cross-signing keys")
	assert.NotContains(t, e2.logs.String(), "not cross-signed")
	assert.Equal(t, master.String(), storedMasterKey(t, e2))

	// Canaries: the recovery key (and the secret-storage key it encodes)
	// is nowhere in the clear.
	var sealed string
	require.NoError(t, e2.db.QueryRow(ctx, `SELECT secrets FROM sb_matrix_cross_signing`).Scan(&sealed))
	e2.stop()
	raw := utils.DecodeBase58RecoveryKey(recoveryKey)
	canaries := []string{recoveryKey, strings.ReplaceAll(recoveryKey, " ", ""),
		base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw), hex.EncodeToString(raw)}
	for _, c := range canaries {
		assert.NotContains(t, e.logs.String(), c, "bridge log (first run)")
		assert.NotContains(t, e2.logs.String(), c, "bridge log (after the restart)")
		assert.NotContains(t, e.hs.Log(), c, "homeserver log")
	}
	for _, c := range canaries {
		assert.NotContains(t, sealed, c, "the stored secrets are sealed")
	}
	dirs := []string{e.hs.Dir}
	if e.dbo.Type == database.TypeSQLite {
		dirs = append(dirs, filepath.Dir(e.dbo.URI))
	}
	assertNotInFiles(t, canaries, raw, dirs...)
}

// withRecoveryKeyCommand gives the connector a registry with the
// recovery-key command, as the daemon does.
func withRecoveryKeyCommand(t *testing.T, e *env) {
	t.Helper()
	reg := commands.New(commands.Options{})
	require.NoError(t, reg.Register(commands.RecoveryKeyCommand(e.conn)))
	e.conn.SetCommands(reg)
}

// keysResponse is the part of /keys/query the test reads.
type keysResponse = mautrix.RespQueryKeys

func queryKeys(t *testing.T, hs *dendrite.Server, token, user string) *keysResponse {
	t.Helper()
	var resp keysResponse
	status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/keys/query", token,
		map[string]any{"device_keys": map[string]any{user: []string{}}}, &resp)
	require.Equal(t, http.StatusOK, status)
	return &resp
}

// firstKey is the user's key in a /keys/query map of cross-signing keys.
func firstKey(keys map[id.UserID]mautrix.CrossSigningKeys, user id.UserID) id.Ed25519 {
	k, ok := keys[user]
	if !ok {
		return ""
	}
	return k.FirstKey()
}

// signedDevice returns the user's device that carries a signature by the
// user's published self-signing key, "" when none does.
func signedDevice(keys *keysResponse, user id.UserID) id.DeviceID {
	ssk := firstKey(keys.SelfSigningKeys, user)
	if ssk == "" {
		return ""
	}
	for devID, dev := range keys.DeviceKeys[user] {
		if _, ok := dev.Signatures[user][id.NewKeyID(id.KeyAlgorithmEd25519, ssk.String())]; ok {
			return devID
		}
	}
	return ""
}

func storedMasterKey(t *testing.T, e *env) string {
	t.Helper()
	var master string
	err := e.db.QueryRow(context.Background(), `SELECT master_key FROM sb_matrix_cross_signing`).Scan(&master)
	if err != nil {
		return ""
	}
	return master
}

// extractRecoveryKey finds the recovery key (base58 in groups of four,
// with its parity byte) in the bot's answer.
func extractRecoveryKey(t *testing.T, answer string) string {
	t.Helper()
	for _, line := range strings.Split(answer, "\n") {
		line = strings.TrimSpace(line)
		if len(strings.Fields(line)) >= 10 && utils.DecodeBase58RecoveryKey(line) != nil {
			return line
		}
	}
	t.Fatalf("no recovery key in the answer")
	return ""
}

// assertUnlocksSecretStorage opens the bot's default secret-storage key
// with the recovery key and checks the master key's seed stored there
// belongs to master.
func assertUnlocksSecretStorage(t *testing.T, e *env, recoveryKey string, master id.Ed25519) {
	t.Helper()
	ctx := context.Background()
	cli, err := mautrix.NewClient(e.hs.URL, e.conn.BotUserID(), e.cfg.Appservice.ASToken)
	require.NoError(t, err)
	sm := ssss.NewSSSSMachine(cli)
	keyID, meta, err := sm.GetDefaultKeyData(ctx)
	require.NoError(t, err, "the bot has a default secret-storage key")
	key, err := meta.VerifyRecoveryKey(keyID, recoveryKey)
	require.NoError(t, err, "the recovery key is the secret-storage key")
	seed, err := sm.GetDecryptedAccountData(ctx, event.AccountDataCrossSigningMaster, key)
	require.NoError(t, err)
	pk, err := olm.NewPKSigningFromSeed(seed)
	require.NoError(t, err)
	assert.Equal(t, master, pk.PublicKey(), "secret storage holds the published master key")
}

// assertNotInFiles checks no file under dirs holds a canary (or raw).
func assertNotInFiles(t *testing.T, canaries []string, raw []byte, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			assert.False(t, bytes.Contains(data, raw), "the secret-storage key's bytes are in %s", path)
			for _, c := range canaries {
				assert.False(t, bytes.Contains(data, []byte(c)), "the recovery key is in %s", path)
			}
			return nil
		})
		require.NoError(t, err)
	}
}
