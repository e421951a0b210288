package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Store reads and writes the domain records. A transaction opened with Tx
// travels in the context, so every Store method called inside it joins it.
type Store struct {
	db *gorm.DB
	// writeLock queues write transactions on SQLite, which allows one
	// writer at a time: waiting on a channel hands the lock over at once,
	// where SQLite's busy handler would poll with sleeps that grow to tens
	// of milliseconds under contention, and the wait ends with the
	// caller's context.
	writeLock chan struct{}
	// log hears about transactions run again after a lost lock race.
	log *slog.Logger
}

// NewStore wraps an open database.
func NewStore(db *gorm.DB) *Store {
	s := &Store{db: db, log: slog.New(slog.DiscardHandler)}
	// Transactions share the queue of the single statements that write
	// outside one, where OpenDB set it up.
	if g, ok := db.Config.Plugins[writeGateName].(*writeGate); ok {
		s.writeLock = g.lock
	} else if !IsMySQL(db) {
		s.writeLock = make(chan struct{}, 1)
	}
	return s
}

// WithLogger returns a store that logs to log. The copy shares the
// database and its write queue with s.
func (s *Store) WithLogger(log *slog.Logger) *Store {
	c := *s
	c.log = log
	return &c
}

// DB returns the underlying handle, for migrations and health checks.
func (s *Store) DB() *gorm.DB { return s.db }

// NewID returns a new time-ordered identifier (UUIDv7), so rows inserted
// together sit together in the primary key index.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

type txKey struct{}

type txState struct {
	tx          *gorm.DB
	afterCommit []func()
	// beforeCommit runs in order, inside the transaction, once its work
	// has succeeded; an error rolls the transaction back.
	beforeCommit []func(ctx context.Context) error
	// pendingEvents holds the Event Log entries each EventLog writes in
	// beforeCommit.
	pendingEvents map[*EventLog][]NewEvent
}

// Tx runs fn in a transaction. If ctx already carries one, fn joins it and
// the outer caller commits. Functions registered with AfterCommit run once
// the outermost transaction has committed, and never if it rolls back.
//
// When the database rolls the outermost transaction back because it lost
// a lock race (a deadlock, a lock wait timeout), Tx runs fn again from the
// start, a few times, after a short random pause. So fn may run more than
// once: it must start from fresh state each time (variables it fills are
// declared or reset inside it) and must have no effect outside the
// transaction before commit; such effects go through AfterCommit, whose
// registrations from a rolled-back attempt are dropped. A nested Tx
// returns the error to the outermost one, which alone can start over.
func (s *Store) Tx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*txState); ok {
		return fn(ctx)
	}
	for attempt := 1; ; attempt++ {
		state, err := s.attempt(ctx, fn)
		if err == nil {
			for _, f := range state.afterCommit {
				f()
			}
			return nil
		}
		if !isRetryableLock(err) || attempt > txLockRetries {
			return err
		}
		pause := lockRetryPause(attempt)
		s.log.DebugContext(ctx, "transaction lost a lock race; running it again", "attempt", attempt, "pause", pause, "error", err.Error())
		timer := time.NewTimer(pause)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return err
		}
	}
}

// txLockRetries bounds how many times Tx runs a transaction again after a
// deadlock or lock wait timeout, so that contention which does not pass
// ends in an answer to try later instead of a request that never ends.
const txLockRetries = 3

// lockRetryPause is the wait before the attempt after attempt n: short,
// growing, and random so that the transactions that deadlocked do not
// meet again in the same order.
func lockRetryPause(n int) time.Duration {
	ceiling := 10 * time.Millisecond << (n - 1)
	return ceiling/2 + rand.N(ceiling/2)
}

// attempt runs fn once in a new outermost transaction, with its own
// after-commit list.
func (s *Store) attempt(ctx context.Context, fn func(ctx context.Context) error) (*txState, error) {
	state := &txState{}
	var opts []*sql.TxOptions
	if IsMySQL(s.db) {
		// Read committed: each statement sees what others committed before
		// it, so a transaction that waited on a lock (a duplicate active
		// run, a claimed row) then reads the row that won, not an older
		// snapshot. It also spares the queue's claims InnoDB's gap locks.
		opts = append(opts, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	err := s.serialized(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			state.tx = tx
			ctx := context.WithValue(ctx, txKey{}, state)
			if err := fn(ctx); err != nil {
				return err
			}
			for _, f := range state.beforeCommit {
				if err := f(ctx); err != nil {
					return err
				}
			}
			return nil
		}, opts...)
	})
	return state, err
}

// serialized runs work holding the SQLite write lock, when there is one.
// A caller whose context ends while it waits gives up, so that a request
// queued behind a long write answers within its deadline. The lock is
// released however work ends, a panic included: otherwise one panicking
// transaction would leave every later write waiting for ever.
func (s *Store) serialized(ctx context.Context, work func() error) error {
	if s.writeLock == nil {
		return work()
	}
	select {
	case s.writeLock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the database's write lock: %w", context.Cause(ctx))
	}
	defer func() { <-s.writeLock }()
	return work()
}

// AfterCommit runs f after the transaction in ctx commits, or at once when
// ctx carries none.
func AfterCommit(ctx context.Context, f func()) {
	if state, ok := ctx.Value(txKey{}).(*txState); ok {
		state.afterCommit = append(state.afterCommit, f)
		return
	}
	f()
}

// noTx marks a context that deliberately carries no transaction.
type noTx struct{}

// Detach returns ctx without its transaction and without its
// cancellation, for work done after commit (AfterCommit callbacks) that
// reads or writes on its own.
func Detach(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), txKey{}, noTx{})
}

// conn returns the transaction in ctx, or the pool.
func (s *Store) conn(ctx context.Context) *gorm.DB {
	if state, ok := ctx.Value(txKey{}).(*txState); ok {
		return state.tx
	}
	return s.db.WithContext(ctx)
}

// InTx reports whether ctx carries an open transaction.
func InTx(ctx context.Context) bool {
	_, ok := ctx.Value(txKey{}).(*txState)
	return ok
}

// Close releases the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// notFound turns gorm's "record not found" into the domain's not_found
// error and wraps anything else with what was being done.
func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return NotFound(what)
	}
	return fmt.Errorf("load %s: %w", what, err)
}

// isDuplicate reports whether err is a unique-index violation.
func isDuplicate(err error) bool {
	return errors.Is(err, gorm.ErrDuplicatedKey)
}

// WritesInParallel reports whether the database commits several writing
// transactions at once (MySQL), rather than one at a time (SQLite), so
// that a writer can tell whether more connections would go faster.
func (s *Store) WritesInParallel() bool { return IsMySQL(s.db) }
