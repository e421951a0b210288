package models

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

func TestGormLogger_DuplicateKeyIsNoError_OtherFailuresAre(t *testing.T) {
	var out bytes.Buffer
	log := newGormLogger(slog.New(slog.NewTextHandler(&out, nil)), time.Hour)
	statement := func() (string, int64) { return "INSERT INTO runs (id) VALUES (?)", 0 }

	// A second tap's insert meets the first run's unique key; the store
	// answers it with that run, so nothing went wrong.
	log.Trace(context.Background(), time.Now(), statement, gorm.ErrDuplicatedKey)
	log.Trace(context.Background(), time.Now(), statement, gorm.ErrRecordNotFound)
	// A deadlock's victim is run again by Tx, which logs that itself.
	log.Trace(context.Background(), time.Now(), statement, &gomysql.MySQLError{Number: mysqlDeadlock, Message: "Deadlock found"})
	// A statement cut short because its caller gave up, as when the node
	// stops.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	log.Trace(gone, time.Now(), statement, context.Canceled)
	if out.Len() != 0 {
		t.Fatalf("expected answers were logged: %s", out.String())
	}

	log.Trace(context.Background(), time.Now(), statement, errors.New("disk I/O error"))
	if !strings.Contains(out.String(), "level=ERROR") || !strings.Contains(out.String(), "disk I/O error") {
		t.Fatalf("a real failure was not logged as an error: %q", out.String())
	}

	// A duplicate that was also slow is still reported as slow.
	out.Reset()
	slow := newGormLogger(slog.New(slog.NewTextHandler(&out, nil)), time.Millisecond)
	slow.Trace(context.Background(), time.Now().Add(-time.Second), statement, gorm.ErrDuplicatedKey)
	if !strings.Contains(out.String(), "level=WARN") || strings.Contains(out.String(), "duplicated") {
		t.Fatalf("a slow duplicate: %q", out.String())
	}
}
