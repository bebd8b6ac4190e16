package daemon

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
)

// allCommands is every bot command a fully configured bridge answers.
var allCommands = []string{
	"help", "whoami", "start", "link", "verify", "unlink", "links", "prefer", "sms", "reveal",
	"login", "logout", "backfill", "invite", "retention", "double-puppet", "recovery-key", "block", "unblock", "report", "admin",
}

// assembled wires a daemon's connectors and commands as Run does (no
// listener, nothing started but the safety service) on an in-memory
// database, with WhatsApp and SMS enabled when full.
func assembled(t *testing.T, full bool) *Daemon {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Identity.Secret = "0123456789abcdef0123456789abcdef"
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = "as-0123456789abcdef0123456789abcdef", "hs-0123456789abcdef0123456789abcdef"
	cfg.Homeserver.Domain = "localhost"
	cfg.Encryption.PickleKey = "pickle-0123456789abcdef"
	cfg.Permissions = map[string]string{"localhost": config.PermUser, "@root:localhost": config.PermAdmin}
	if full {
		cfg.WhatsApp.Enabled = true
		cfg.SMS.Enabled = true
		cfg.SMS.PublicURL = "https://bridge.example.org"
		cfg.SMS.Twilio.AccountSID, cfg.SMS.Twilio.AuthToken = "AC0123456789abcdef0123456789abcdef", "token"
		cfg.SMS.Twilio.Numbers = []string{"+14155550100"}
	}
	db, err := database.Open(ctx, database.Options{Type: database.TypeSQLite, URI: ":memory:"}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	d := &Daemon{cfg: cfg, log: zerolog.Nop(), db: db, routes: map[string]http.Handler{}}
	d.router, err = bridge.New(bridge.Options{DB: db, Secret: []byte(cfg.Identity.Secret), Log: zerolog.Nop()})
	require.NoError(t, err)
	require.NoError(t, d.openIdentity(ctx))
	require.NoError(t, d.registerConnectors(ctx, prometheus.NewRegistry()))
	t.Cleanup(d.safety.Stop)
	return d
}

// In a fully configured daemon, `help` (for an admin) lists every
// command, generated from the registry, and nothing says it is not
// available; every command is registered by its owner exactly once.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, full := range []bool{true, false} {
		d := assembled(t, full)
		var names []string
		for _, c := range d.cmds.Commands() {
			names = append(names, c.Name)
		}
		require.ElementsMatch(t, allCommands, names)
		help := d.cmds.Run(context.Background(), &commands.Request{
			User: bridge.Address{Network: bridge.NetworkMatrix, ID: "@root:localhost"}, Level: commands.LevelAdmin, Name: "help",
		}).Text
		for _, c := range d.cmds.Commands() {
			require.Contains(t, help, "• "+c.Usage+" — "+c.Help, c.Name)
		}
		require.Len(t, strings.Split(help, "\n"), len(allCommands)+1, "a heading and one line per command")
		require.NotContains(t, strings.ToLower(help), "not available")
		require.NotContains(t, strings.ToLower(help), "not configured")
	}
}
