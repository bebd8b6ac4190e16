package bridge

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"

	"go.mau.fi/util/dbutil"
)

// stmtCache holds prepared statements for the queries on the delivery hot
// path, so SQLite and PostgreSQL do not parse them again for every message.
// Statements join the transaction carried in ctx (dbutil's DoTxn), if any.
type stmtCache struct {
	db                                        *dbutil.Database
	siblings, insMessage, insQueue, del, seen *sql.Stmt
}

var positionalParam = regexp.MustCompile(`\$(\d+)`)

func prepareStmts(ctx context.Context, db *dbutil.Database) (*stmtCache, error) {
	c := &stmtCache{db: db}
	for _, s := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&c.siblings, siblingLegsQuery},
		{&c.insMessage, insertMessageQuery},
		{&c.insQueue, insertQueueQuery},
		{&c.del, deleteQueueQuery},
		{&c.seen, seenQuery},
	} {
		q := s.query
		if db.Dialect == dbutil.SQLite {
			q = positionalParam.ReplaceAllString(q, "?$1")
		}
		stmt, err := db.RawDB.PrepareContext(ctx, q)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("%w: prepare: %w", ErrDatabase, err)
		}
		*s.dst = stmt
	}
	return c, nil
}

func (c *stmtCache) close() {
	for _, s := range []*sql.Stmt{c.siblings, c.insMessage, c.insQueue, c.del, c.seen} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// in returns stmt bound to the transaction in ctx, or stmt itself.
func (c *stmtCache) in(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	if txn, ok := c.db.Execable(ctx).(*dbutil.LoggingTxn); ok {
		return txn.UnderlyingTx.StmtContext(ctx, stmt)
	}
	return stmt
}

func (c *stmtCache) exec(ctx context.Context, stmt *sql.Stmt, args ...any) (sql.Result, error) {
	return c.in(ctx, stmt).ExecContext(ctx, args...)
}

func (c *stmtCache) queryRow(ctx context.Context, stmt *sql.Stmt, args ...any) *sql.Row {
	return c.in(ctx, stmt).QueryRowContext(ctx, args...)
}

func (c *stmtCache) query(ctx context.Context, stmt *sql.Stmt, args ...any) (*sql.Rows, error) {
	return c.in(ctx, stmt).QueryContext(ctx, args...)
}
