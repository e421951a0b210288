package models_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMarkPanelsSeen_MovesLastSeenForwardNeverBack(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		never := createLocation(t, store, acct, "Never seen", "SER-0001").Panel
		earlier := createLocation(t, store, acct, "Seen earlier", "SER-0002").Panel
		later := createLocation(t, store, acct, "Disconnected later", "SER-0003").Panel
		other := createLocation(t, store, acct, "Not in the batch", "SER-0004").Panel

		at := time.Now().UTC().Truncate(time.Second)
		setSeen := func(panelID string, seen time.Time) {
			t.Helper()
			if err := store.DB().Model(&models.Panel{}).Where("id = ?", panelID).Update("last_seen_at", seen).Error; err != nil {
				t.Fatal(err)
			}
		}
		setSeen(earlier.ID, at.Add(-time.Minute))
		setSeen(later.ID, at.Add(time.Second))
		setSeen(other.ID, at.Add(-time.Hour))

		// Ids of panels that are gone fill the first chunk, so the panels
		// that count are in the second.
		var ids []string
		for range 550 {
			ids = append(ids, models.NewID())
		}
		ids = append(ids, never.ID, earlier.ID, later.ID)
		if err := store.MarkPanelsSeen(ctx, ids, at); err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			name    string
			panelID string
			want    time.Time
		}{
			{"a panel never seen", never.ID, at},
			{"a panel seen earlier", earlier.ID, at},
			{"a panel written later", later.ID, at.Add(time.Second)},
			{"a panel not in the batch", other.ID, at.Add(-time.Hour)},
		} {
			p, err := store.PanelByID(ctx, c.panelID)
			if err != nil {
				t.Fatal(err)
			}
			if p.LastSeenAt == nil || !p.LastSeenAt.Equal(c.want) {
				t.Errorf("%s: last seen %v, want %v", c.name, p.LastSeenAt, c.want)
			}
		}
	})
}

// On SQLite, writes outside a transaction queue for the single writer
// without holding a connection of the pool meanwhile: while a transaction
// holds the writer, reads are still answered however many such writes
// wait, and the writes are all made once it commits.
func TestMarkPanelsSeen_WhileATransactionHoldsSQLitesWriter_LeavesReadsAConnection(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		if b.Name != "sqlite" {
			// MariaDB locks rows, not the database, and has no queue.
			continue
		}
		t.Run(b.Name, func(t *testing.T) {
			// A pool of four connections, as the server opens SQLite.
			b.Config.MaxOpenConns = 4
			store := dbtest.OpenMigrated(t, b)
			ctx := context.Background()
			acct := mustAccount(t, store, "A")
			panel := createLocation(t, store, acct, "HQ", "SER-0001").Panel

			held, release := make(chan struct{}), make(chan struct{})
			txDone := make(chan error, 1)
			go func() {
				txDone <- store.Tx(ctx, func(ctx context.Context) error {
					if err := store.TouchPanel(ctx, panel.ID, time.Now().UTC()); err != nil {
						return err
					}
					close(held)
					<-release
					return nil
				})
			}()
			<-held
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()

			var writes sync.WaitGroup
			writeErrs := make(chan error, 8)
			var started atomic.Int32
			for range 8 {
				writes.Add(1)
				go func() {
					defer writes.Done()
					started.Add(1)
					writeErrs <- store.MarkPanelsSeen(ctx, []string{panel.ID}, time.Now().UTC())
				}()
			}
			for started.Load() < 8 {
				time.Sleep(time.Millisecond)
			}

			readCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := store.PanelByID(readCtx, panel.ID); err != nil {
				t.Fatalf("read while 8 writes wait for the writer: %v", err)
			}

			close(release)
			if err := <-txDone; err != nil {
				t.Fatal(err)
			}
			writes.Wait()
			close(writeErrs)
			for err := range writeErrs {
				if err != nil {
					t.Errorf("write queued behind the transaction: %v", err)
				}
			}
		})
	}
}
