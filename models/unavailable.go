package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"
)

// IsUnavailable reports whether err says that the database could not be
// used at all — the connection refused, dropped or closed, the call out of
// time, the SQLite file full or read-only — rather than that a statement
// was wrong. Such a failure is the dependency's state, not the request's:
// the caller is told to come back, and nothing was changed.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	switch {
	case isRetryableLock(err):
		// Tx has already run the transaction again a few times; what is
		// left is contention that will pass, not a wrong request.
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, gomysql.ErrInvalidConn), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &netErr):
		return true
	}
	// database/sql and SQLite say these only in words.
	msg := err.Error()
	for _, words := range []string{"sql: database is closed", "database or disk is full", "attempt to write a readonly database", "disk I/O error"} {
		if strings.Contains(msg, words) {
			return true
		}
	}
	return false
}
