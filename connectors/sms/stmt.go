package sms

import (
	"context"
	"database/sql"
	"strings"
	"sync"

	"go.mau.fi/util/dbutil"
)

// sendStateStmt is sendStateQuery prepared once: it runs for every SMS
// sent, and parsing it each time was a visible part of a send's CPU.
type sendStateStmt struct {
	once sync.Once
	stmt *sql.Stmt
}

// query runs sendStateQuery, prepared when it can be (outside any
// transaction: sends do not run in one).
func (s *sendStateStmt) query(ctx context.Context, db *dbutil.Database, args ...any) (dbutil.Rows, error) {
	s.once.Do(func() {
		q := sendStateQuery
		if db.Dialect == dbutil.SQLite {
			q = strings.NewReplacer("$1", "?1", "$2", "?2").Replace(q)
		}
		if stmt, err := db.RawDB.PrepareContext(ctx, q); err == nil {
			s.stmt = stmt
		}
	})
	if _, inTxn := db.Execable(ctx).(*dbutil.LoggingTxn); s.stmt == nil || inTxn {
		return db.Query(ctx, sendStateQuery, args...)
	}
	return s.stmt.QueryContext(ctx, args...)
}

// close closes the statement after the last send (Stop); a later Start
// prepares it again.
func (s *sendStateStmt) close() {
	if s.stmt != nil {
		_ = s.stmt.Close()
	}
	s.stmt, s.once = nil, sync.Once{}
}
