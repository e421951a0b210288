package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// writeGate queues the writes to an SQLite database, which allows one
// writer at a time, on one channel: transactions (see Store.serialized) and
// the single statements that write outside one. Without it such a
// statement waited in SQLite's busy handler holding a connection of the
// small pool, so that a few of them behind a long queue of transactions
// left reads with no connection at all; waiting on the channel holds none,
// and takes the writer the moment it is free.
type writeGate struct {
	lock chan struct{}
	// wait bounds how long a statement waits for its turn when its
	// context does not end sooner, as SQLite's busy timeout did.
	wait time.Duration
}

const writeGateName = "panelsync:sqlite_write_gate"

// sqliteBusyTimeout bounds SQLite's own wait for its lock, which only
// writes that bypass the gate (none the store makes) still meet.
const sqliteBusyTimeout = 10 * time.Second

// errWriteGateWait is a write outside a transaction that waited its whole
// turn for the database.
var errWriteGateWait = errors.New("the database is busy with other writes")

type writeGateHeld struct{}

func (g *writeGate) Name() string { return writeGateName }

// Initialize has every write statement outside a transaction take the
// gate for its own length.
func (g *writeGate) Initialize(db *gorm.DB) error {
	cb := db.Callback()
	return errors.Join(
		cb.Create().Before("gorm:create").Register(writeGateName+":take", g.take),
		cb.Create().After("gorm:create").Register(writeGateName+":give", g.give),
		cb.Update().Before("gorm:update").Register(writeGateName+":take", g.take),
		cb.Update().After("gorm:update").Register(writeGateName+":give", g.give),
		cb.Delete().Before("gorm:delete").Register(writeGateName+":take", g.take),
		cb.Delete().After("gorm:delete").Register(writeGateName+":give", g.give),
		cb.Raw().Before("gorm:raw").Register(writeGateName+":take", g.take),
		cb.Raw().After("gorm:raw").Register(writeGateName+":give", g.give),
	)
}

// take waits for the gate, unless the statement runs in a transaction,
// which holds it already, or is one that a gated statement runs (an
// association saved with its owner).
func (g *writeGate) take(db *gorm.DB) {
	if db.Error != nil || db.DryRun {
		return
	}
	if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); inTx {
		return
	}
	ctx := db.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Value(writeGateHeld{}) != nil {
		return
	}
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.lock <- struct{}{}:
		db.Statement.Context = context.WithValue(ctx, writeGateHeld{}, db.Statement)
	case <-ctx.Done():
		_ = db.AddError(fmt.Errorf("wait for the database's write lock: %w", context.Cause(ctx)))
	case <-timer.C:
		_ = db.AddError(fmt.Errorf("wait for the database's write lock for %s: %w", g.wait, errWriteGateWait))
	}
}

// give releases the gate if this statement took it.
func (g *writeGate) give(db *gorm.DB) {
	if db.Statement.Context == nil || db.Statement.Context.Value(writeGateHeld{}) != db.Statement {
		return
	}
	db.Statement.Context = context.WithValue(db.Statement.Context, writeGateHeld{}, nil)
	<-g.lock
}
