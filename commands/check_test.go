package commands_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// Check refuses what Run refuses, with the same answer and the reason as
// a Refusal, and runs nothing; a request that passes comes back with what
// its argument check read.
func TestCheck(t *testing.T) {
	reg := commands.New(commands.Options{})
	ran := false
	require.NoError(t, reg.Register(commands.Command{
		Name: "dial", Usage: "dial +<phone number>", Help: "call someone", Level: commands.LevelUser,
		Args: commands.PhoneArg, Run: func(context.Context, *commands.Request) string { ran = true; return "" },
	}))
	for _, tc := range []struct {
		level   commands.Level
		text    string
		refused commands.Refusal
	}{
		{commands.LevelNone, "dial +14155550100", commands.RefusedNoUse},
		{commands.LevelUser, "fly", commands.RefusedUnknown},
		{commands.LevelRelay, "dial +14155550100", commands.RefusedLevel},
		{commands.LevelUser, "dial 4155550100", commands.RefusedArgs},
		{commands.LevelUser, "dial +1 415 555 0100", commands.RefusedNone},
	} {
		req := func() *commands.Request {
			name, args, line := commands.Parse(tc.text)
			return &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: "@a:x"}, Level: tc.level, Name: name, Args: args, Line: line}
		}
		checked := req()
		_, ans := reg.Check(context.Background(), checked)
		require.Equal(t, tc.refused, ans.Refused, tc.text)
		if tc.refused == commands.RefusedNone {
			require.Equal(t, "+14155550100", checked.Phone)
			continue
		}
		require.Equal(t, reg.Run(context.Background(), req()), ans, "Run answers the same: %s", tc.text)
	}
	require.False(t, ran, "Check runs nothing")
}
