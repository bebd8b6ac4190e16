package database

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// TestSQLiteFilesPrivate: a new SQLite database and its -wal and -shm
// files are readable by their owner only, whatever the umask (they hold
// the Olm and WhatsApp session keys). An existing file keeps its mode.
func TestSQLiteFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	for _, tc := range []struct {
		name string
		uri  func(path string) string
	}{
		{"path", func(p string) string { return p }},
		{"file URI", func(p string) string { return "file:" + p + "?_pragma=foreign_keys(1)" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "switchboard.db")
			db, err := Open(context.Background(), Options{Type: TypeSQLite, URI: tc.uri(path)}, zerolog.Nop())
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			_, err = db.Exec(context.Background(), "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('secret')")
			require.NoError(t, err)
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				if tc.name == "file URI" && f != path {
					// Without the DSN's journal_mode(WAL) there is no -wal.
					if _, err := os.Stat(f); err != nil {
						continue
					}
				}
				st, err := os.Stat(f)
				require.NoError(t, err, f)
				require.Equal(t, fs.FileMode(0o600), st.Mode().Perm(), f)
			}
		})
	}
	t.Run("existing file keeps its mode", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "switchboard.db")
		require.NoError(t, os.WriteFile(path, nil, 0o640))
		db, err := Open(context.Background(), Options{Type: TypeSQLite, URI: path}, zerolog.Nop())
		require.NoError(t, err)
		require.NoError(t, db.Close())
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o640), st.Mode().Perm())
	})
}

func TestSQLitePath(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"/var/lib/sb/switchboard.db", "/var/lib/sb/switchboard.db"},
		{"file:/var/lib/sb/switchboard.db?_pragma=x", "/var/lib/sb/switchboard.db"},
		{"file:/var/lib/a%20b.db", "/var/lib/a b.db"},
		{":memory:", ""},
		{"file::memory:?cache=shared", ""},
		{"file:x.db?mode=memory", ""},
		{"", ""},
	} {
		require.Equal(t, tc.want, SQLitePath(tc.uri), tc.uri)
	}
}
