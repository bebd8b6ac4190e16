package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/daemon"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

// botDM runs switchboard (with extra environment) against Dendrite and
// returns a function that sends a command in alice's DM with the bot and
// waits for the bot's answer containing want.
type botDM struct {
	t      *testing.T
	hs     *dendrite.Server
	token  string
	room   string
	bot    string
	listen string
	logs   *bytes.Buffer
	n      int
}

func startBotDM(t *testing.T, extraEnv ...string) *botDM {
	return startBotDMWith(t, dendrite.Options{}, extraEnv...)
}

// startBotDMWith is startBotDM on a Dendrite started with opts.
func startBotDMWith(t *testing.T, opts dendrite.Options, extraEnv ...string) *botDM {
	dir := t.TempDir()
	listen := freePort(t)
	env := append([]string{
		"SWITCHBOARD_APPSERVICE_LISTEN=" + listen,
		"SWITCHBOARD_APPSERVICE_ADDRESS=http://" + listen,
	}, extraEnv...)
	hs, env := withHomeserver(t, dir, env, opts)
	logs := startDaemon(t, dir, env)
	_, token := hs.RegisterUser(t, "alice", "correct horse battery")
	b := &botDM{t: t, hs: hs, token: token, bot: "@switchboard:" + hs.ServerName, listen: listen, logs: logs}
	var created struct {
		RoomID string `json:"room_id"`
	}
	status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", token,
		map[string]any{"invite": []string{b.bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created)
	require.Equal(t, http.StatusOK, status)
	b.room = created.RoomID
	require.Eventually(t, func() bool {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+b.room+"/joined_members", token, nil, &members)
		_, ok := members.Joined[b.bot]
		return ok
	}, 30*time.Second, 200*time.Millisecond, "the bot never joined the DM")
	return b
}

// ask sends a command and returns the bot's first answer containing want.
func (b *botDM) ask(command, want string) string {
	b.t.Helper()
	b.n++
	status := b.hs.DoJSON(b.t, http.MethodPut, "/_matrix/client/v3/rooms/"+b.room+"/send/m.room.message/cmd"+string(rune('a'+b.n)), b.token,
		map[string]any{"msgtype": "m.text", "body": command}, nil)
	require.Equal(b.t, http.StatusOK, status)
	var answer string
	require.Eventually(b.t, func() bool {
		var msgs struct {
			Chunk []struct {
				Sender  string         `json:"sender"`
				Content map[string]any `json:"content"`
			} `json:"chunk"`
		}
		b.hs.DoJSON(b.t, http.MethodGet, "/_matrix/client/v3/rooms/"+b.room+"/messages?dir=b&limit=30", b.token, nil, &msgs)
		for _, ev := range msgs.Chunk {
			body, _ := ev.Content["body"].(string)
			if ev.Sender == b.bot && strings.Contains(body, want) {
				answer = body
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no answer containing %q to %q", want, command)
	return answer
}

// With whatsapp.enabled: false (the default), `login whatsapp` and `logout
// whatsapp` answer, through a real homeserver, that WhatsApp is not
// configured on this bridge.
func TestWhatsAppNotConfigured(t *testing.T) {
	b := startBotDM(t)
	for _, command := range []string{"login whatsapp", "login whatsapp +14155550123", "logout whatsapp"} {
		answer := b.ask(command, "WhatsApp is not configured on this bridge")
		require.NotContains(t, answer, "4155550123")
	}
	require.NotContains(t, b.logs.String(), "4155550123")
}

// With WhatsApp enabled, the daemon runs the real whatsmeow session store
// on its database and reports the connector on /health; a login, which
// cannot reach WhatsApp's servers from here, fails at once with a clear
// answer, and whoami shows the WhatsApp lines.
func TestWhatsAppEnabledWithoutNetwork(t *testing.T) {
	asToken := "whatsapp-e2e-as-token-0123456789abcdef" // /health details need it
	b := startBotDM(t, "SWITCHBOARD_WHATSAPP_ENABLED=true", "SWITCHBOARD_APPSERVICE_AS_TOKEN="+asToken)
	var health daemon.HealthReport
	req, err := http.NewRequest(http.MethodGet, "http://"+b.listen+"/health", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+asToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	resp.Body.Close()
	require.Equal(t, "ok", string(health.Connectors["whatsapp"].State))
	require.Equal(t, "no WhatsApp logins", health.Connectors["whatsapp"].Message)

	resp, err = http.Get("http://" + b.listen + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), "sb_whatsapp_logins_connected 0")

	b.ask("login whatsapp", "Could not connect to WhatsApp right now")
	b.ask("whoami", "WhatsApp: not logged in")
	b.ask("logout whatsapp", "You are not logged in to WhatsApp.")
	require.NotContains(t, b.logs.String(), "whatsapp.enabled is true, but")
}
