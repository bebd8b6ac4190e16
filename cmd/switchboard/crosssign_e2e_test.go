package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// TestBotPasswordCrossSignsTheDevice: an admin gives the bot user a
// password through Dendrite's admin API and puts it into the daemon's
// config, as encryption.bot_password in config.yaml or as
// SWITCHBOARD_ENCRYPTION_BOT_PASSWORD. The daemon then answers Dendrite's
// m.login.password step and publishes the bot's cross-signing keys: a
// user's /keys/query shows the bot's master key and its device signed by
// its self-signing key. The password appears nowhere in the daemon's log,
// at its most verbose level (trace).
func TestBotPasswordCrossSignsTheDevice(t *testing.T) {
	for _, via := range []string{"config.yaml", "env"} {
		t.Run(via, func(t *testing.T) {
			dir := t.TempDir()
			listen := freePort(t)
			env := []string{
				"SWITCHBOARD_APPSERVICE_LISTEN=" + listen,
				"SWITCHBOARD_APPSERVICE_ADDRESS=http://" + listen,
				"SWITCHBOARD_LOGGING_LEVEL=trace",
			}
			hs, env := withHomeserver(t, dir, env, dendrite.Options{})
			bot := "@switchboard:" + hs.ServerName
			password := "bot-" + randomHex(t, 12)
			// Dendrite made the appservice's bot user when it started; it
			// has no password until an admin sets one.
			hs.SetPasswordAsAdmin(t, bot, password)
			switch via {
			case "config.yaml":
				setConfigKey(t, filepath.Join(dir, "config.yaml"), "encryption", "bot_password", password)
			case "env":
				env = append(env, "SWITCHBOARD_ENCRYPTION_BOT_PASSWORD="+password)
			}
			logs, stop := runDaemonSync(t, dir, env)

			_, token := hs.RegisterUser(t, "alice", "alice-password")
			var keys botKeys
			require.Eventually(t, func() bool {
				keys = queryBotKeys(t, hs, token, bot)
				return keys.signedDevice != ""
			}, 60*time.Second, 250*time.Millisecond, "the bot's device never showed a self-signing signature")
			assert.NotEmpty(t, keys.master, "the bot's master key is published")
			assert.NotEmpty(t, keys.selfSigning)

			stop()
			out := logs.String()
			assert.Contains(t, out, "Cross-signed the bot's device")
			assert.NotContains(t, out, "not cross-signed", "the first attempt succeeded")
			assert.NotContains(t, out, password, "the bot's password is not logged")
		})
	}
}

// botKeys is what /keys/query shows another user of the bot's keys.
type botKeys struct {
	master, selfSigning string
	// signedDevice is a device of the bot's that carries a signature by
	// selfSigning.
	signedDevice string
}

func queryBotKeys(t *testing.T, hs *dendrite.Server, token, user string) botKeys {
	t.Helper()
	type xsKey struct {
		Keys map[string]string `json:"keys"`
	}
	var resp struct {
		DeviceKeys map[string]map[string]struct {
			Signatures map[string]map[string]string `json:"signatures"`
		} `json:"device_keys"`
		MasterKeys      map[string]xsKey `json:"master_keys"`
		SelfSigningKeys map[string]xsKey `json:"self_signing_keys"`
	}
	require.Equal(t, http.StatusOK, hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/keys/query", token,
		map[string]any{"device_keys": map[string]any{user: []string{}}}, &resp))
	var out botKeys
	for _, k := range resp.MasterKeys[user].Keys {
		out.master = k
	}
	for _, k := range resp.SelfSigningKeys[user].Keys {
		out.selfSigning = k
	}
	if out.selfSigning == "" {
		return out
	}
	for dev, keys := range resp.DeviceKeys[user] {
		if _, ok := keys.Signatures[user]["ed25519:"+out.selfSigning]; ok {
			out.signedDevice = dev
		}
	}
	return out
}

// runDaemonSync runs the daemon in dir with env; its output goes to a
// buffer that is safe to read while it runs. stop ends it (SIGTERM) and
// waits; the test's end does too.
func runDaemonSync(t *testing.T, dir string, env []string) (*testenv.SyncBuffer, func()) {
	t.Helper()
	c := cmd(dir, env)
	logs := &testenv.SyncBuffer{}
	c.Stdout, c.Stderr = logs, logs
	require.NoError(t, c.Start())
	done := false
	stop := func() {
		if done {
			return
		}
		done = true
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("switchboard output (tail):\n%s", testenv.TailBytes(logs.Bytes(), 80))
		}
	})
	return logs, stop
}

// setConfigKey sets section.key in a config file.
func setConfigKey(t *testing.T, path, section, key, value string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	sec, _ := doc[section].(map[string]any)
	if sec == nil {
		sec = map[string]any{}
		doc[section] = sec
	}
	sec[key] = value
	data, err = yaml.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
