package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// TestTx_PanicInATransaction_LaterTransactionsStillRun: a panic inside a
// transaction reaches its caller (who recovers it), and the store is
// left usable; on SQLite, where write transactions take turns, a turn
// still held by the panicking one would stop every later write.
func TestTx_PanicInATransaction_LaterTransactionsStillRun(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic inside the transaction did not reach its caller")
				}
			}()
			_ = store.Tx(ctx, func(ctx context.Context) error {
				if _, err := store.CreateAccount(ctx, "Rolled Back Ltd"); err != nil {
					t.Error(err)
				}
				panic("a bug in the transaction's work")
			})
		}()

		done := make(chan error, 1)
		go func() {
			done <- store.Tx(ctx, func(ctx context.Context) error {
				_, err := store.CreateAccount(ctx, "Next Writer Ltd")
				return err
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the next transaction: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the next transaction never ran: the panicking one still holds the write turn")
		}
	})
}

// mysqlStore opens a migrated store on MySQL, or skips where none is
// configured (dbtest fails instead in CI): SQLite takes write transactions
// one at a time, so they never deadlock.
func mysqlStore(t *testing.T) *models.Store {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		if b.Name == "mysql" {
			return dbtest.OpenMigrated(t, b)
		}
	}
	t.Skipf("deadlocks need MySQL: set %s", dbtest.MySQLEnv)
	return nil
}

// TestTx_Deadlock_RunsTheLoserAgainAndBothCommit: two transactions lock two
// rows in opposite orders, each waiting until the other holds its first
// row, so InnoDB must roll one back. Tx runs that one again: both commit,
// the after-commit work of the rolled-back attempt never runs, and that of
// each committed attempt runs once. The second transaction takes its locks
// in a nested Tx, which hands the deadlock up to the outermost one.
func TestTx_Deadlock_RunsTheLoserAgainAndBothCommit(t *testing.T) {
	store := mysqlStore(t)
	ctx := context.Background()
	a, b := mustAccount(t, store, "Row A Ltd"), mustAccount(t, store, "Row B Ltd")

	var (
		mu       sync.Mutex
		attempts = map[string]int{}
		hooks    []string
	)
	// Each transaction holds its first row when it closes its channel, and
	// asks for its second only once the other has closed its own, on its
	// first attempt; an attempt run again goes straight through.
	holding := map[string]chan struct{}{"ab": make(chan struct{}), "ba": make(chan struct{})}
	lockBoth := func(ctx context.Context, name, other string, first, second models.Account) error {
		mu.Lock()
		attempts[name]++
		n := attempts[name]
		mu.Unlock()
		models.AfterCommit(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			hooks = append(hooks, fmt.Sprintf("%s#%d", name, n))
		})
		if _, err := store.LockAccount(ctx, first.ID); err != nil {
			return err
		}
		if n == 1 {
			close(holding[name])
			select {
			case <-holding[other]:
			case <-time.After(30 * time.Second):
				return errors.New("the other transaction never took its first row")
			}
		}
		_, err := store.LockAccount(ctx, second.ID)
		return err
	}
	errs := make(chan error, 2)
	go func() {
		errs <- store.Tx(ctx, func(ctx context.Context) error { return lockBoth(ctx, "ab", "ba", a, b) })
	}()
	go func() {
		errs <- store.Tx(ctx, func(ctx context.Context) error {
			return store.Tx(ctx, func(ctx context.Context) error { return lockBoth(ctx, "ba", "ab", b, a) })
		})
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a transaction failed instead of being run again: %v", err)
		}
	}

	if total := attempts["ab"] + attempts["ba"]; total != 3 {
		t.Fatalf("attempts = %v, want one transaction run once and the deadlock's victim twice", attempts)
	}
	loser := "ab"
	if attempts["ba"] == 2 {
		loser = "ba"
	}
	winner := map[string]string{"ab": "ba", "ba": "ab"}[loser]
	slices.Sort(hooks)
	want := []string{loser + "#2", winner + "#1"}
	slices.Sort(want)
	if !slices.Equal(hooks, want) {
		t.Fatalf("after-commit work ran for %v, want %v: once per committed attempt, never for the rolled-back one", hooks, want)
	}
}

// TestTx_LockRaceThatNeverPasses_GivesUpAsUnavailable: a transaction that
// loses its lock race on every attempt is run a bounded number of times,
// runs no after-commit work, and ends in an error the API answers as 503
// service_unavailable (try again), not as an internal error.
func TestTx_LockRaceThatNeverPasses_GivesUpAsUnavailable(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		for _, number := range []uint16{1213, 1205} {
			attempts, hooks := 0, 0
			err := store.Tx(context.Background(), func(ctx context.Context) error {
				attempts++
				models.AfterCommit(ctx, func() { hooks++ })
				return fmt.Errorf("enqueue run: %w", &gomysql.MySQLError{Number: number, Message: "lost a lock race"})
			})
			if err == nil {
				t.Fatalf("error %d: Tx succeeded", number)
			}
			if attempts != 4 {
				t.Errorf("error %d: ran the transaction %d times, want 4 (once, then three more)", number, attempts)
			}
			if hooks != 0 {
				t.Errorf("error %d: after-commit work ran %d times for transactions that never committed", number, hooks)
			}
			if !models.IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = false, want true", err)
			}
		}
	})
}

// TestTx_OtherErrors_AreNotRunAgain: only a lost lock race is worth a
// second attempt; a wrong request fails at once.
func TestTx_OtherErrors_AreNotRunAgain(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		attempts := 0
		err := store.Tx(context.Background(), func(ctx context.Context) error {
			attempts++
			return &gomysql.MySQLError{Number: 1062, Message: "duplicate entry"}
		})
		if err == nil || attempts != 1 {
			t.Fatalf("err = %v after %d attempts, want the error after one", err, attempts)
		}
		if models.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true for a statement's own error", err)
		}
	})
}

// TestTx_ContextEndsWhileWaitingToRunAgain_StopsAtOnce: the pause before
// another attempt ends with the caller's context.
func TestTx_ContextEndsWhileWaitingToRunAgain_StopsAtOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		attempts := 0
		err := store.Tx(ctx, func(ctx context.Context) error {
			attempts++
			cancel()
			return &gomysql.MySQLError{Number: 1213, Message: "deadlock"}
		})
		if err == nil || attempts != 1 {
			t.Fatalf("err = %v after %d attempts, want the deadlock after one: the caller has gone", err, attempts)
		}
	})
}
