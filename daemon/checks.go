package daemon

import (
	"io/fs"
	"os"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/database"
)

// checkBuild refuses a config that needs what this binary lacks.
func checkBuild(cfg *config.Config) error {
	if cfg.Encryption.Allow && !matrix.EncryptionCompiled() {
		return ErrNoEncryption
	}
	return nil
}

// warnConfig logs the config's warnings (see config.Config.Warnings) and
// a warning for the config file if other users can read it: it holds the
// tokens and secrets.
func warnConfig(log zerolog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn().Str("key", w.Key).Msg("Config: " + w.Message)
	}
	if p := cfg.Path(); p != "" {
		warnReadable(log, "config", p)
	}
}

// warnDatabaseFiles warns for each SQLite file (database, -wal, -shm)
// that other users can read: it holds the session keys.
func warnDatabaseFiles(log zerolog.Logger, cfg *config.Config) {
	if cfg.Database.Type != config.DatabaseSQLite {
		return
	}
	p := database.SQLitePath(cfg.Database.URI)
	if p == "" {
		return
	}
	for _, f := range []string{p, p + "-wal", p + "-shm"} {
		warnReadable(log, "database", f)
	}
}

// warnReadable logs a warning if path exists and its group or others have
// any access to it. It is not a refusal: the admin may have reasons.
func warnReadable(log zerolog.Logger, what, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		log.Warn().Str("file", path).Str("mode", fs.FileMode(perm).String()).
			Msg("The " + what + " file holds secrets and other users can read it; chmod 600 it")
	}
}
