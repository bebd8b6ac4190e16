package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/switchboard-bridge/switchboard/config"
)

// TestSMSSpoolPath: the spool of inbound SMS lives next to the SQLite
// database (a directory the bridge can write), else next to the config.
func TestSMSSpoolPath(t *testing.T) {
	for _, tc := range []struct {
		name, typ, uri, want string
	}{
		{"sqlite path", config.DatabaseSQLite, "/var/lib/switchboard/switchboard.db", "/var/lib/switchboard/sms-spool"},
		{"sqlite file URI", config.DatabaseSQLite, "file:/var/lib/sb/db.sqlite?_txlock=immediate", "/var/lib/sb/sms-spool"},
		{"sqlite relative (no config path)", config.DatabaseSQLite, "switchboard.db", ""},
		{"postgres without config path", config.DatabasePostgres, "postgres://x/y", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Database.Type, cfg.Database.URI = tc.typ, tc.uri
			assert.Equal(t, tc.want, smsSpoolPath(cfg))
		})
	}
}
