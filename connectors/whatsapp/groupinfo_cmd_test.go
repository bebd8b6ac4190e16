package whatsapp

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// `invite +N` in a group portal adds the number to the WhatsApp group
// through the owner's own login, redacting the command that named it;
// the relay, other users, numbers not on WhatsApp and WhatsApp's refusals
// get an answer that names no number.
func TestInviteCommand(t *testing.T) {
	newNumber, newJID := "+14155550188", types.NewJID("14155550188", types.DefaultUserServer)
	var gated []string
	var gateErr error
	gate := func(_ context.Context, user string, network bridge.NetworkID) error {
		gated = append(gated, user+" "+string(network))
		return gateErr
	}
	invite := func(e *env, room bridge.ChatID, user, number, event string) string {
		req := &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: user}, Level: commands.LevelUser,
			Room: room, Event: event, Name: "invite", Line: number, Args: []string{number}}
		cmd := InviteCommand(e.wa, e.router, gate)
		require.NoError(t, cmd.Args(req))
		answer := cmd.Run(e.ctx, req)
		requireNoNumbers(t, answer, "the answer")
		require.NotContains(t, answer, digitsOf(newNumber))
		return answer
	}

	t.Run("added", func(t *testing.T) {
		e, f, g, leg := groupEnv(t, alice, aliceJID)
		f.mu.Lock()
		f.onWhatsApp[newNumber] = newJID
		f.mu.Unlock()
		require.Equal(t, inviteAddedAnswer, invite(e, leg.Chat, alice, newNumber, "$cmd1"))
		g.mu.Lock()
		added := slices.Clone(g.added)
		g.mu.Unlock()
		require.Equal(t, []types.JID{newJID}, added)
		e.matrix.mu.Lock()
		redacted := slices.Clone(e.matrix.redacted)
		e.matrix.mu.Unlock()
		require.Contains(t, redacted, id.EventID("$cmd1"), "the command naming the number is redacted")
		require.Equal(t, inviteAlreadyAnswer, invite(e, leg.Chat, alice, newNumber, "$cmd2"))
		requireNoNumbers(t, e.logs.String(), "logs")
		require.NotContains(t, e.logs.String(), digitsOf(newNumber))
	})
	t.Run("refusals", func(t *testing.T) {
		e, f, g, leg := groupEnv(t, alice, aliceJID)
		require.Equal(t, inviteNotOnWhatsApp, invite(e, leg.Chat, alice, newNumber, "$c1"))
		f.mu.Lock()
		f.onWhatsApp[newNumber] = newJID
		f.refuseAdd = map[string]int{newJID.User: 403}
		f.mu.Unlock()
		require.Equal(t, invitePrivacyAnswer, invite(e, leg.Chat, alice, newNumber, "$c2"))
		require.Equal(t, inviteNotOwnerAnswer, invite(e, leg.Chat, bob, newNumber, "$c3"))
		require.Equal(t, inviteNotPortal, invite(e, "!elsewhere:example.org", alice, newNumber, "$c4"))
		g.mu.Lock()
		require.Empty(t, g.added)
		g.mu.Unlock()
	})
	t.Run("new-chat limit", func(t *testing.T) {
		// Each invite counts as a new chat, as `start` does: over the
		// limit (or suspended), nobody is added and the user is told why.
		e, f, g, leg := groupEnv(t, alice, aliceJID)
		f.mu.Lock()
		f.onWhatsApp[newNumber] = newJID
		f.mu.Unlock()
		gated, gateErr = nil, errors.New("limit reached: new chats allows 1 per hour; try again in 59 minutes")
		t.Cleanup(func() { gateErr = nil })
		answer := invite(e, leg.Chat, alice, newNumber, "$c1")
		require.Equal(t, "Not added: limit reached: new chats allows 1 per hour; try again in 59 minutes.", answer)
		require.Equal(t, []string{alice + " whatsapp"}, gated)
		g.mu.Lock()
		require.Empty(t, g.added)
		g.mu.Unlock()
	})
	t.Run("relay", func(t *testing.T) {
		e, f, g, leg := groupEnv(t, RelayAccount, relayJID)
		f.mu.Lock()
		f.onWhatsApp[newNumber] = newJID
		f.mu.Unlock()
		require.Equal(t, inviteRelayAnswer, invite(e, leg.Chat, alice, newNumber, "$c1"))
		g.mu.Lock()
		require.Empty(t, g.added, "the relay adds nobody")
		g.mu.Unlock()
	})
}
