package commands_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		text, name, line string
		args             []string
	}{
		{"", "help", "", nil},
		{"   ", "help", "", nil},
		{"HELP", "help", "", []string{}},
		{"start +1 (202) 555-0143", "start", "+1 (202) 555-0143", []string{"+1", "(202)", "555-0143"}},
		{"  report  spam and\tabuse ", "report", "spam and\tabuse", []string{"spam", "and", "abuse"}},
	} {
		name, args, line := commands.Parse(tc.text)
		require.Equal(t, tc.name, name, tc.text)
		require.Equal(t, tc.line, line, tc.text)
		require.Equal(t, len(tc.args), len(args), tc.text)
		for i := range args {
			require.Equal(t, tc.args[i], args[i])
		}
	}
}

// Run checks the sender, the command, its level (raised by LevelFor for
// some arguments) and arguments before the function runs; help and whoami
// come from the registry.
func TestRun(t *testing.T) {
	reg := commands.New(commands.Options{})
	var got *commands.Request
	require.NoError(t, reg.Register(commands.Command{
		Name: "dial", Usage: "dial +<phone number>", Help: "call someone", Level: commands.LevelUser,
		Args: commands.PhoneArg,
		Run:  func(_ context.Context, req *commands.Request) string { got = req; return "" },
	}, commands.Command{
		Name: "mode", Usage: "mode a|secret", Help: "pick a mode", Level: commands.LevelRelay,
		LevelFor: func(args []string) commands.Level {
			if len(args) == 1 && args[0] == "secret" {
				return commands.LevelAdmin
			}
			return commands.LevelNone
		},
		Args: commands.OneOf("a", "secret"),
		Run:  func(context.Context, *commands.Request) string { return "ok" },
	}))
	reg.AddWhoami(func(_ context.Context, user bridge.Address) []string {
		return []string{"network: " + string(user.Network)}
	})
	run := func(level commands.Level, text string) commands.Answer {
		name, args, line := commands.Parse(text)
		return reg.Run(context.Background(), &commands.Request{
			User: bridge.Address{Network: bridge.NetworkMatrix, ID: "@a:x"}, Level: level, Name: name, Args: args, Line: line,
		})
	}
	for _, tc := range []struct {
		level      commands.Level
		text, want string
	}{
		{commands.LevelNone, "help", "You are not allowed to use this bridge."},
		{commands.LevelRelay, "nope", "unknown command, try help"},
		{commands.LevelRelay, "dial +12025550143", "dial needs user permission on this bridge; you have relay."},
		{commands.LevelUser, "dial", "Usage: dial +<phone number> — call someone"},
		{commands.LevelUser, "dial 202 555 0143", "That is not a phone number I can read (a phone number must start with + and the country code).\nUsage: dial"},
		{commands.LevelUser, "dial +1 (202) 555-0143", "Done."},
		{commands.LevelRelay, "mode a", "ok"},
		{commands.LevelUser, "mode secret", "mode is only available to bridge admins."},
		{commands.LevelAdmin, "mode secret", "ok"},
		{commands.LevelRelay, "mode b", "Usage: mode a|secret"},
		{commands.LevelRelay, "help mode", "Usage: mode a|secret — pick a mode"},
		{commands.LevelRelay, "whoami", "You are @a:x, with relay permission on this bridge.\nnetwork: matrix"},
	} {
		require.True(t, strings.HasPrefix(run(tc.level, tc.text).Text, tc.want), "%q: %q", tc.text, run(tc.level, tc.text).Text)
	}
	require.Equal(t, "+12025550143", got.Phone)
	help := run(commands.LevelRelay, "help")
	require.True(t, help.Verbatim)
	require.Contains(t, help.Text, "• mode a|secret — pick a mode")
	require.NotContains(t, help.Text, "dial", "help lists only what the level may run")
}

func TestRegisterRefuses(t *testing.T) {
	reg := commands.New(commands.Options{})
	run := func(context.Context, *commands.Request) string { return "" }
	require.True(t, errors.Is(reg.Register(commands.Command{Name: "help", Usage: "help", Run: run}), commands.ErrDuplicate))
	require.True(t, errors.Is(reg.Register(commands.Command{Name: "x", Usage: "x"}), commands.ErrInvalidCommand))
	require.True(t, errors.Is(reg.Register(commands.Command{Name: "two words", Usage: "x", Run: run}), commands.ErrInvalidCommand))
}

// A region lets national numbers be read.
func TestRegion(t *testing.T) {
	reg := commands.New(commands.Options{Region: "US"})
	var phone string
	require.NoError(t, reg.Register(commands.Command{Name: "dial", Usage: "dial <number>", Level: commands.LevelRelay, Args: commands.PhoneArg,
		Run: func(_ context.Context, req *commands.Request) string { phone = req.Phone; return "" }}))
	reg.Run(context.Background(), &commands.Request{Level: commands.LevelRelay, Name: "dial", Args: []string{"(202)", "555-0143"}, Line: "(202) 555-0143"})
	require.Equal(t, "+12025550143", phone)
}
