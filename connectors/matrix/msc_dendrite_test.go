//go:build goolm

package matrix_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
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

// TestAppserviceModeOnDendriteTold: encryption.appservice on Dendrite,
// which pushes no encryption traffic (no MSC2409/MSC3202): the bot starts
// (without a /sync loop: TestMSC4190DeviceCreation counts), bridges plain
// messages, and after ten transactions
// without the MSC2409 fields tells the admins once that room keys cannot
// arrive. This checks the premise of the detection on a real homeserver.
func TestAppserviceModeOnDendriteTold(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) { cfg.Encryption.Appservice = true })
	var mu sync.Mutex
	var told []string
	e.conn.SetAdminNotifier(func(_ context.Context, key, _ string) {
		mu.Lock()
		told = append(told, key)
		mu.Unlock()
	})
	alice := e.newUser(t, "alice")
	room := e.loopPortal(t, idOf(alice), bridge.Sender{ID: "hank", DisplayName: "Hank"})
	alice.join(t, room)
	for i := range 12 {
		alice.sendText(t, room, fmt.Sprintf("plain %d", i))
	}
	e.lb.WaitSent(12, 30*time.Second)
	waitFor(t, 15*time.Second, "the admins told", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(told, "matrix-no-msc2409")
	})
}
