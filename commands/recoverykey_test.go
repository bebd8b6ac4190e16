package commands_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// keeper is a RecoveryKeyShower that shows its key once.
type keeper struct {
	key   string
	shown bool
	err   error
	asked int
}

func (k *keeper) ShowRecoveryKey(context.Context, *commands.Request) (string, error) {
	k.asked++
	if k.err != nil {
		return "", k.err
	}
	if k.shown {
		return "", commands.ErrRecoveryKeyShown
	}
	k.shown = true
	return k.key, nil
}

// TestRecoveryKeyCommand: only admins may ask; the key is shown once,
// untouched by the phone-number redaction (Verbatim), and every refusal of
// the keeper gets its own answer that never holds the key.
func TestRecoveryKeyCommand(t *testing.T) {
	const key = "EsTc 5rr1 4Jhp Uc18 hwCn 2b9T LSvj 5h4T TkP8 bdeK JGTa"
	run := func(k *keeper, level commands.Level) commands.Answer {
		reg := commands.New(commands.Options{})
		require.NoError(t, reg.Register(commands.RecoveryKeyCommand(k)))
		return reg.Run(context.Background(), &commands.Request{
			User: bridge.Address{Network: bridge.NetworkMatrix, ID: "@admin:x"}, Level: level,
			Room: "!dm:x", Name: "recovery-key",
		})
	}

	k := &keeper{key: key}
	assert.Contains(t, run(k, commands.LevelUser).Text, "only available to bridge admins")
	assert.Zero(t, k.asked, "a user's request does not reach the keeper")

	first := run(k, commands.LevelAdmin)
	assert.True(t, first.Verbatim, "the key is not redacted")
	assert.Contains(t, first.Text, key)
	second := run(k, commands.LevelAdmin)
	assert.Contains(t, second.Text, "already shown")
	assert.NotContains(t, second.Text, key)

	for _, tc := range []struct {
		err  error
		want string
	}{
		{commands.ErrNotDirectChat, "direct chat"},
		{commands.ErrNotEncrypted, "not encrypted"},
		{commands.ErrNoRecoveryKey, "no cross-signing identity yet"},
		{errors.New("database is down"), "Could not read the recovery key"},
	} {
		ans := run(&keeper{key: key, err: tc.err}, commands.LevelAdmin)
		assert.Contains(t, ans.Text, tc.want, tc.err.Error())
		assert.NotContains(t, ans.Text, "database is down", "internal errors are not shown")
	}
}
