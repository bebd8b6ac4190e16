package main

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dendrite"
)

// With whatsapp.enabled: false (the default), `login whatsapp` and `logout
// whatsapp` answer, through a real homeserver, that WhatsApp is not
// configured on this bridge.
func TestWhatsAppNotConfigured(t *testing.T) {
	dir := t.TempDir()
	listen := freePort(t)
	env := []string{
		"SWITCHBOARD_APPSERVICE_LISTEN=" + listen,
		"SWITCHBOARD_APPSERVICE_ADDRESS=http://" + listen,
	}
	out, err := cmd(dir, env, "-g").CombinedOutput()
	require.NoError(t, err, "%s", out)
	hs := dendrite.Start(t, dendrite.Options{Registrations: []string{filepath.Join(dir, "registration.yaml")}})
	env = append(env, "SWITCHBOARD_HOMESERVER_ADDRESS="+hs.URL, "SWITCHBOARD_HOMESERVER_DOMAIN="+hs.ServerName)
	c := cmd(dir, env)
	var logs bytes.Buffer
	c.Stdout, c.Stderr = &logs, &logs
	require.NoError(t, c.Start())
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
		if t.Failed() {
			t.Logf("switchboard output:\n%s", logs.String())
		}
	})

	_, token := hs.RegisterUser(t, "alice", "correct horse battery")
	bot := "@switchboard:" + hs.ServerName
	var created struct {
		RoomID string `json:"room_id"`
	}
	status := hs.DoJSON(t, http.MethodPost, "/_matrix/client/v3/createRoom", token,
		map[string]any{"invite": []string{bot}, "is_direct": true, "preset": "trusted_private_chat"}, &created)
	require.Equal(t, http.StatusOK, status)
	room := created.RoomID
	require.Eventually(t, func() bool {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+room+"/joined_members", token, nil, &members)
		_, ok := members.Joined[bot]
		return ok
	}, 30*time.Second, 200*time.Millisecond, "the bot never joined the DM")

	for i, command := range []string{"login whatsapp", "login whatsapp +14155550123", "logout whatsapp"} {
		status = hs.DoJSON(t, http.MethodPut, "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/wa"+string(rune('0'+i)), token,
			map[string]any{"msgtype": "m.text", "body": command}, nil)
		require.Equal(t, http.StatusOK, status)
	}
	var answers []string
	require.Eventually(t, func() bool {
		var msgs struct {
			Chunk []struct {
				Sender  string         `json:"sender"`
				Content map[string]any `json:"content"`
			} `json:"chunk"`
		}
		hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+room+"/messages?dir=b&limit=30", token, nil, &msgs)
		answers = answers[:0]
		for _, ev := range msgs.Chunk {
			body, _ := ev.Content["body"].(string)
			if ev.Sender == bot && strings.Contains(body, "WhatsApp is not configured on this bridge") {
				answers = append(answers, body)
			}
		}
		return len(answers) == 3
	}, 30*time.Second, 200*time.Millisecond, "the bot did not answer every WhatsApp command")
	for _, a := range answers {
		require.NotContains(t, a, "4155550123")
	}
	require.NotContains(t, logs.String(), "4155550123")
}
