package daemon

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/database"
)

// ask runs a command line through reg as user at level.
func ask(t *testing.T, reg *commands.Registry, user string, level commands.Level, text string) string {
	t.Helper()
	name, args, line := commands.Parse(text)
	return reg.Run(context.Background(), &commands.Request{
		User: bridge.Address{Network: bridge.NetworkMatrix, ID: user}, Level: level, Name: name, Args: args, Line: line,
	}).Text
}

// With whatsapp.enabled: false, the WhatsApp commands still answer: that
// WhatsApp is not configured on this bridge.
func TestWhatsAppCommandsWhenDisabled(t *testing.T) {
	cfg, err := config.Parse([]byte("identity: {secret: 0123456789abcdef0123}\nappservice: {as_token: as-0123456789abcdef0123456789abcdef, hs_token: hs-0123456789abcdef0123456789abcdef}\nencryption: {pickle_key: p}\n"))
	require.NoError(t, err)
	require.False(t, cfg.WhatsApp.Enabled)
	reg := commands.New(commands.Options{})
	require.NoError(t, whatsapp.Register(reg, nil))
	for _, text := range []string{"login whatsapp", "login whatsapp +14155550123", "login whatsapp relay", "logout whatsapp"} {
		answer := ask(t, reg, "@alice:localhost", commands.LevelAdmin, text)
		require.Contains(t, answer, "WhatsApp is not configured on this bridge")
		require.NotContains(t, answer, "4155550123")
	}
	require.NotContains(t, ask(t, reg, "@alice:localhost", commands.LevelAdmin, "whoami"), "WhatsApp", "no whoami lines")
}

// With WhatsApp enabled, the connector's own commands are registered.
func TestWhatsAppCommandsWhenEnabled(t *testing.T) {
	cfg := config.Default()
	cfg.Identity.Secret = "0123456789abcdef0123"
	cfg.WhatsApp.Enabled = true
	db, err := database.Open(context.Background(), database.Options{Type: database.TypeSQLite, URI: ":memory:"}, zerolog.Nop())
	require.NoError(t, err)
	defer db.Close()
	wa, err := whatsapp.New(whatsAppConfig(cfg), db, zerolog.Nop(), whatsapp.Options{})
	require.NoError(t, err)
	reg := commands.New(commands.Options{})
	require.NoError(t, whatsapp.Register(reg, wa))
	answer := ask(t, reg, "@alice:localhost", commands.LevelUser, "login whatsapp")
	require.Equal(t, "WhatsApp is starting; try again in a moment.", answer, "not started yet")
	whoami := strings.Split(ask(t, reg, "@alice:localhost", commands.LevelUser, "whoami"), "\n")
	require.Len(t, whoami, 3, "the connector's whoami lines are registered")
	require.Equal(t, "WhatsApp: not logged in (send `login whatsapp`)", whoami[1])
}
