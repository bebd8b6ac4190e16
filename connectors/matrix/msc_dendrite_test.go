//go:build goolm

package matrix_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// TestMSC4190FallbackOnDendrite: with encryption.msc4190 on a homeserver
// without MSC4190 (Dendrite: the registration carries io.element.msc4190
// and org.matrix.msc3202, which it ignores), the bot's device PUT is
// refused (Dendrite v0.13.8 answers 404 M_FORBIDDEN "device does not
// exist"), the bot logs in with m.login.application_service instead, and
// end-to-end encryption works as without the flag: an encrypted command
// from matrix-js-sdk is decrypted and answered encrypted.
func TestMSC4190FallbackOnDendrite(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) { cfg.Encryption.MSC4190 = true })
	require.True(t, e.conn.EncryptionAvailable())
	assert.Contains(t, e.logs.String(), "logging in with m.login.application_service", "the PUT was refused and the bot fell back")
	sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	bot := e.conn.BotUserID().String()
	room := js.CreateRoom(t, jsclient.CreateRoomOptions{Encrypted: true, Invite: []string{bot}, IsDirect: true})
	js.WaitMember(t, room, bot, "join", 20*time.Second)

	sent := js.Send(t, room, "help")
	require.True(t, sent.Encrypted)
	var answer jsclient.Message
	for i := 0; i < 3 && !strings.Contains(answer.Body, "whoami"); i++ {
		answer = js.WaitMessageFrom(t, room, bot, 30*time.Second)
		assert.True(t, answer.Decrypted, "the bot's %q was encrypted", answer.Body)
	}
	assert.Contains(t, answer.Body, "whoami")
}
