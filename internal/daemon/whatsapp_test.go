package daemon

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/database"
)

// recordingCommands records the handlers installed on the Matrix side.
type recordingCommands struct {
	handlers map[string]matrix.CommandFunc
	whoami   []matrix.WhoamiFunc
}

func (r *recordingCommands) SetCommandHandler(name string, fn matrix.CommandFunc) error {
	if r.handlers == nil {
		r.handlers = map[string]matrix.CommandFunc{}
	}
	r.handlers[name] = fn
	return nil
}

func (r *recordingCommands) AddWhoami(fn matrix.WhoamiFunc) { r.whoami = append(r.whoami, fn) }

// With whatsapp.enabled: false, the WhatsApp commands still answer: that
// WhatsApp is not configured on this bridge.
func TestWhatsAppCommandsWhenDisabled(t *testing.T) {
	cfg, err := config.Parse([]byte("identity: {secret: 0123456789abcdef0123}\nappservice: {as_token: as-0123456789abcdef0123456789abcdef, hs_token: hs-0123456789abcdef0123456789abcdef}\nencryption: {pickle_key: p}\n"))
	require.NoError(t, err)
	require.False(t, cfg.WhatsApp.Enabled)
	var rec recordingCommands
	require.NoError(t, installWhatsAppCommands(&rec, nil))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"login", []string{"whatsapp"}},
		{"login", []string{"whatsapp", "+14155550123"}},
		{"login", []string{"whatsapp", "relay"}},
		{"logout", []string{"whatsapp"}},
	} {
		fn := rec.handlers[tc.name]
		require.NotNil(t, fn, tc.name)
		answer := fn(context.Background(), &matrix.CommandRequest{User: "@alice:localhost", Level: config.PermAdmin, Name: tc.name, Args: tc.args})
		require.Contains(t, answer, "WhatsApp is not configured on this bridge")
		require.NotContains(t, answer, "4155550123")
	}
	require.Empty(t, rec.whoami)
}

// With WhatsApp enabled, the connector's own handlers are installed.
func TestWhatsAppCommandsWhenEnabled(t *testing.T) {
	cfg := config.Default()
	cfg.Identity.Secret = "0123456789abcdef0123"
	cfg.WhatsApp.Enabled = true
	db, err := database.Open(context.Background(), database.Options{Type: database.TypeSQLite, URI: ":memory:"}, zerolog.Nop())
	require.NoError(t, err)
	defer db.Close()
	wa, err := whatsapp.New(cfg, db, zerolog.Nop(), whatsapp.Options{})
	require.NoError(t, err)
	var rec recordingCommands
	require.NoError(t, installWhatsAppCommands(&rec, wa))
	require.Len(t, rec.whoami, 1)
	answer := rec.handlers["login"](context.Background(), &matrix.CommandRequest{User: "@alice:localhost", Level: config.PermUser, Name: "login", Args: []string{"whatsapp"}})
	require.Equal(t, "WhatsApp is starting; try again in a moment.", answer, "not started yet")
	require.Equal(t, "WhatsApp: not logged in (send `login whatsapp`)", rec.whoami[0](context.Background(), id.UserID("@alice:localhost"))[0])
}
