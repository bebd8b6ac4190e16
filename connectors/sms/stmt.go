package sms

import (
	"context"
	"database/sql"
	"regexp"
	"sync"

	"go.mau.fi/util/dbutil"
)

// preparedStmt is a query of the send path prepared once: it runs for
// every SMS sent, and parsing it each time was a visible part of a send's
// CPU (SQLite's parser, 2.6% of the load tool's profile for sendState
// alone). It joins the transaction carried in ctx (dbutil's DoTxn), as
// db.Exec would.
type preparedStmt struct {
	query string
	// mu guards prepared and stmt: the router's writer may still run a
	// send's bookkeeping (Delivery.OnCommit) while Stop closes them.
	mu       sync.Mutex
	prepared bool
	stmt     *sql.Stmt
}

var positionalParam = regexp.MustCompile(`\$(\d+)`)

// get returns the statement for ctx: bound to its transaction (dbutil's
// only kind), if any; nil if it could not be prepared (the caller runs the
// query unprepared).
func (s *preparedStmt) get(ctx context.Context, db *dbutil.Database) *sql.Stmt {
	s.mu.Lock()
	if !s.prepared {
		s.prepared = true
		q := s.query
		if db.Dialect == dbutil.SQLite {
			q = positionalParam.ReplaceAllString(q, "?$1")
		}
		if stmt, err := db.RawDB.PrepareContext(ctx, q); err == nil {
			s.stmt = stmt
		}
	}
	stmt := s.stmt
	s.mu.Unlock()
	if stmt == nil {
		return nil
	}
	if txn, ok := db.Execable(ctx).(*dbutil.LoggingTxn); ok {
		return txn.UnderlyingTx.StmtContext(ctx, stmt)
	}
	return stmt
}

func (s *preparedStmt) queryRows(ctx context.Context, db *dbutil.Database, args ...any) (dbutil.Rows, error) {
	if stmt := s.get(ctx, db); stmt != nil {
		return stmt.QueryContext(ctx, args...)
	}
	return db.Query(ctx, s.query, args...)
}

func (s *preparedStmt) exec(ctx context.Context, db *dbutil.Database, args ...any) error {
	if stmt := s.get(ctx, db); stmt != nil {
		_, err := stmt.ExecContext(ctx, args...)
		return err
	}
	_, err := db.Exec(ctx, s.query, args...)
	return err
}

// close closes the statement after the last send (Stop); a later Start
// prepares it again.
func (s *preparedStmt) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stmt != nil {
		_ = s.stmt.Close()
	}
	s.stmt, s.prepared = nil, false
}

// sendStmts are the prepared statements of the send path.
type sendStmts struct {
	state, insertSent, touchChat, insertSentTouch preparedStmt
}

func newSendStmts() *sendStmts {
	return &sendStmts{
		state:      preparedStmt{query: sendStateQuery},
		insertSent: preparedStmt{query: insertSentQuery},
		touchChat:  preparedStmt{query: touchChatQuery},

		insertSentTouch: preparedStmt{query: insertSentTouchQuery},
	}
}

func (s *sendStmts) close() {
	s.state.close()
	s.insertSent.close()
	s.touchChat.close()
	s.insertSentTouch.close()
}
