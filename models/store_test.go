package models_test

import (
	"context"
	"testing"
	"time"

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
