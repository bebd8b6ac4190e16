package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/migrations"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// Type names accepted in database.type.
const (
	TypeSQLite   = "sqlite"
	TypePostgres = "postgres"
)

// Options configure Open.
type Options struct {
	// Type is TypeSQLite or TypePostgres.
	Type string
	// URI is a file path (or ":memory:") for SQLite, a postgres:// URL for PostgreSQL.
	URI string
	// MaxOpenConns and MaxIdleConns bound the pool; zero picks a default.
	MaxOpenConns int
	MaxIdleConns int
}

// Open connects to the database and checks that it answers. It does not run
// migrations; see Upgrade.
func Open(ctx context.Context, opts Options, log zerolog.Logger) (*dbutil.Database, error) {
	var driver, dsn string
	maxOpen, maxIdle := opts.MaxOpenConns, opts.MaxIdleConns
	switch opts.Type {
	case TypeSQLite, "":
		driver, dsn = "sqlite", sqliteDSN(opts.URI)
		if opts.URI == ":memory:" {
			// Every connection to :memory: is its own database; keep one.
			maxOpen, maxIdle = 1, 1
		}
		if maxOpen == 0 {
			maxOpen = 8
		}
		if err := createPrivate(SQLitePath(opts.URI)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
	case TypePostgres:
		driver, dsn = "pgx", opts.URI
		if maxOpen == 0 {
			maxOpen = 20
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedType, opts.Type)
	}
	if maxIdle == 0 {
		maxIdle = maxOpen
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	raw.SetMaxOpenConns(maxOpen)
	raw.SetMaxIdleConns(maxIdle)
	raw.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err = raw.PingContext(pingCtx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	db, err := dbutil.NewWithDB(raw, driver)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	db.Owner = "switchboard"
	db.Log = dbutil.ZeroLogger(log.With().Str("component", "database").Logger())
	if driver == "sqlite" && opts.URI != ":memory:" {
		go checkpointLoop(raw, log.With().Str("component", "database").Logger())
	}
	return db, nil
}

// checkpointInterval is how often the write-ahead log is copied back into
// the database file.
const checkpointInterval = time.Second

// checkpointLoop checkpoints SQLite's WAL in the background (PASSIVE: it
// never blocks writers), so no commit pays for a checkpoint and the -wal
// file stays small. It ends when the database is closed.
func checkpointLoop(raw *sql.DB, log zerolog.Logger) {
	for {
		time.Sleep(checkpointInterval)
		_, err := raw.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		if err != nil {
			if strings.Contains(err.Error(), "database is closed") {
				return
			}
			log.Warn().Err(err).Msg("WAL checkpoint failed")
		}
	}
}

// FileMode is the mode of a new SQLite database file. SQLite gives its -wal
// and -shm files the mode of the database file, so they are private too:
// the database holds Olm and WhatsApp session keys.
const FileMode fs.FileMode = 0o600

// createPrivate creates the SQLite database file at path with FileMode if
// it does not exist yet. An existing file keeps its mode (the daemon warns
// when others can read it).
func createPrivate(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// The umask may have left it stricter; never looser than FileMode.
	if err = f.Chmod(FileMode); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// SQLitePath returns the file a SQLite database.uri (a path or a file:
// URI) names, or "" for an in-memory database.
func SQLitePath(uri string) string {
	rest, isURI := strings.CutPrefix(uri, "file:")
	file, query, _ := strings.Cut(rest, "?")
	if !isURI {
		file, query = uri, ""
	}
	if file == "" || file == ":memory:" || strings.Contains(query, "mode=memory") {
		return ""
	}
	if isURI {
		if p, err := url.PathUnescape(file); err == nil {
			file = p
		}
	}
	return file
}

// sqliteDSN turns a path into a modernc.org/sqlite DSN with the pragmas
// switchboard relies on: WAL, foreign keys, a busy timeout, immediate write
// transactions, and secure_delete so deleted rows are zeroed in the file.
func sqliteDSN(path string) string {
	if strings.HasPrefix(path, "file:") {
		return path
	}
	q := url.Values{}
	for _, p := range []string{
		"foreign_keys(1)",
		"busy_timeout(10000)",
		"secure_delete(1)",
		// In WAL mode NORMAL writes each commit to the -wal file before
		// the commit returns, so a commit survives a crash or kill of
		// the process (the router acknowledges only committed events),
		// and syncs the file when it checkpoints (checkpointLoop, each
		// second): a power loss or kernel crash can undo the commits
		// since. FULL would survive that too, at one fsync per commit:
		// the router's group commit shares it across a batch, but other
		// writers (connector stores) would pay it per write. In
		// BenchmarkRouterAccept (bridge, 8 senders) FULL accepted about
		// 40% as many messages per second as NORMAL (issue 16).
		"synchronous(NORMAL)",
		// Checkpoints run in the background (see checkpointLoop), not in
		// whichever commit happens to cross the WAL size limit.
		"wal_autocheckpoint(0)",
	} {
		q.Add("_pragma", p)
	}
	if path != ":memory:" {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Upgrade runs one owner's migrations (see package migrations) with its
// own version table.
func Upgrade(ctx context.Context, db *dbutil.Database, owner migrations.Owner, log zerolog.Logger) (*dbutil.Database, error) {
	var table dbutil.UpgradeTable
	table.RegisterFSPath(owner.FS, owner.Name)
	child := db.Child(owner.Table, table, dbutil.ZeroLogger(log.With().Str("db_section", owner.Table).Logger()))
	if err := child.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMigration, owner.Table, err)
	}
	return child, nil
}

// Checkpoint truncates SQLite's write-ahead log so that pages holding
// deleted rows leave the -wal file too. It does nothing on PostgreSQL.
func Checkpoint(ctx context.Context, db *dbutil.Database) error {
	if db.Dialect != dbutil.SQLite {
		return nil
	}
	_, err := db.Exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}
