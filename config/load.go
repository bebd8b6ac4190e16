package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-bridge/switchboard"
)

// Load reads and parses the config file at path with environment
// overrides from env (os.LookupEnv in production; nil for none). A
// relative SQLite database.uri is made absolute against the directory of
// the config file, so the database lives next to it whatever the working
// directory.
func Load(path string, env LookupFunc) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	cfg, err := ParseEnv(data, env)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.path = abs
	if cfg.Database.Type == DatabaseSQLite {
		cfg.Database.URI = resolveSQLite(cfg.Database.URI, filepath.Dir(abs))
	}
	return cfg, nil
}

// LoadOrCreate is how the daemon loads its config.
//
// If path does not exist, it writes the example config there (mode 0600)
// with every "generate" secret replaced by a fresh random value, and
// reports created. If path exists, keys that the example has and the file
// lacks are added (see [Upgrade]) and "generate" secrets are replaced (see
// [GenerateSecrets]); if either changed anything the file is rewritten,
// keeping its comments, key order and permissions. Secrets whose
// environment override is set are left as they are in the file.
//
// [Config.AddedKeys] and [Config.GeneratedKeys] tell what was changed. A
// file with unknown keys or values of the wrong type is not modified.
func LoadOrCreate(path string, env LookupFunc) (cfg *Config, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		out, generated, err := GenerateSecrets(switchboard.ExampleConfig, env)
		if err != nil {
			return nil, false, err
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, false, fmt.Errorf("config: create %s: %w", dir, err)
			}
		}
		if err := writeFileAtomic(path, out, 0o600); err != nil {
			return nil, false, fmt.Errorf("config: write %s: %w", path, err)
		}
		cfg, err := Load(path, env)
		if err != nil {
			return nil, true, err
		}
		cfg.generated = generated
		return cfg, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("config: read %s: %w", path, err)
	}

	// Refuse to touch a file that does not even decode: the admin should
	// see their typo, not a rewritten file.
	if _, err := decode(data); err != nil {
		return nil, false, err
	}
	out, added, err := Upgrade(data)
	if err != nil {
		return nil, false, err
	}
	out, generated, err := GenerateSecrets(out, env)
	if err != nil {
		return nil, false, err
	}
	if len(added) > 0 || len(generated) > 0 {
		if err := writeFileAtomic(path, out, 0); err != nil {
			return nil, false, fmt.Errorf("config: write %s: %w", path, err)
		}
	}
	cfg, err = Load(path, env)
	if err != nil {
		return nil, false, err
	}
	cfg.added, cfg.generated = added, generated
	return cfg, false, nil
}

// resolveSQLite makes a relative SQLite path or file: URI absolute against
// dir. In-memory databases and absolute paths are returned unchanged.
func resolveSQLite(uri, dir string) string {
	prefix, rest := "", uri
	if after, ok := strings.CutPrefix(uri, "file:"); ok {
		prefix, rest = "file:", after
	}
	file, query, hasQuery := strings.Cut(rest, "?")
	if file == "" || file == ":memory:" || filepath.IsAbs(file) || strings.HasPrefix(file, "/") {
		return uri
	}
	out := prefix + filepath.Join(dir, file)
	if hasQuery {
		out += "?" + query
	}
	return out
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, so a crash never leaves half a config behind. perm 0
// keeps the mode of the existing file. Symlinks are followed.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if perm == 0 {
		perm = 0o600
		if st, err := os.Stat(path); err == nil {
			perm = st.Mode().Perm()
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
