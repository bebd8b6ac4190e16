package matrix_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// TestRecentContactMessages: for `report with last N` the bot reads a
// portal's history and returns the contact's (the ghost's) latest N
// messages, oldest first — not the user's, not the bot's — decrypting them
// in an encrypted portal.
func TestRecentContactMessages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		encrypted bool
	}{{"plain room", false}, {"encrypted room", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.encrypted && !matrix.EncryptionCompiled() {
				t.Skip("crypto is not compiled in (build with -tags goolm)")
			}
			e := startWithDendrite(t, func(cfg *config.Config) { cfg.Encryption.Default = tc.encrypted })
			ctx := context.Background()
			alice := e.newUser(t, "alice")
			contact := bridge.Sender{ID: "erin", DisplayName: "Erin"}
			room := e.loopPortal(t, idOf(alice), contact)
			alice.join(t, room)
			encrypted, err := e.conn.IsEncrypted(ctx, bridge.ChatID(room))
			require.NoError(t, err)
			require.Equal(t, tc.encrypted, encrypted)
			ghost := e.conn.GhostUserID(netLoop, contact.ID).String()
			for i := range 4 {
				require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
					Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: bridge.RemoteID(fmt.Sprintf("h%d", i)), Sender: contact,
					Content: &bridge.Content{Type: bridge.MsgText, Body: fmt.Sprintf("contact says %d", i)},
				}))
			}
			want := 4
			alice.waitEvent(t, room, "the ghost's last message", func(evt roomEvent) bool {
				// Only its messages: the ghost's join is in the timeline too.
				if evt.Sender == ghost && (evt.Type == "m.room.message" || evt.Type == "m.room.encrypted") {
					want--
				}
				return want <= 0
			})
			alice.sendText(t, room, "alice says hi")
			e.conn.NotifyRoom(ctx, id.RoomID(room), "a bot notice")
			time.Sleep(200 * time.Millisecond)

			got, err := e.conn.RecentContactMessages(ctx, id.RoomID(room), 2)
			require.NoError(t, err)
			require.Len(t, got, 2)
			require.Equal(t, "contact says 2", got[0].Body)
			require.Equal(t, "contact says 3", got[1].Body)
			require.Equal(t, ghost, string(got[1].Sender))
			require.False(t, got[0].At.After(got[1].At))

			all, err := e.conn.RecentContactMessages(ctx, id.RoomID(room), 10)
			require.NoError(t, err)
			require.Len(t, all, 4, "only the contact's messages")
		})
	}
}
