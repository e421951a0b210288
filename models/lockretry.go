package models

import (
	"errors"

	gomysql "github.com/go-sql-driver/mysql"
)

// MySQL error numbers for a transaction that lost a lock: InnoDB chose it
// as a deadlock's victim and rolled it back, or it waited longer than
// innodb_lock_wait_timeout for a row another transaction held.
const (
	mysqlLockWaitTimeout = 1205
	mysqlDeadlock        = 1213
)

// isRetryableLock reports whether err says the transaction lost a lock
// race rather than that a statement was wrong: run again from the start,
// the same transaction is expected to succeed.
func isRetryableLock(err error) bool {
	var myErr *gomysql.MySQLError
	if !errors.As(err, &myErr) {
		return false
	}
	return myErr.Number == mysqlDeadlock || myErr.Number == mysqlLockWaitTimeout
}
