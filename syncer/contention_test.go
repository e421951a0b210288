package syncer_test

import (
	"net/http"
	"sync"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestTaps_BesideAnAllLocationsBatch_NeverAnswerInternalError: taps on
// many locations of an account while an All Locations batch of the same
// account creates its runs contend for the same rows (each location's run
// and record, the account's Event Log counter). Every tap is answered as
// API.md says, started or deduplicated, and never 500 internal: the
// counter, taken last, closes no lock cycle any more, and a deadlock
// InnoDB still finds (two inserts of one location's run beside a finished
// run's key) is run again.
func TestTaps_BesideAnAllLocationsBatch_NeverAnswerInternalError(t *testing.T) {
	const locations, taps, parallel = 50, 200, 16
	for _, b := range dbtest.Backends(t) {
		if b.Name != "mysql" {
			// SQLite takes write transactions one at a time.
			continue
		}
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			f := newFleet(t, node, "Busy", locations, locations, sim.Options{Users: 2})

			type answer struct {
				status int
				body   string
			}
			answers := make([]answer, taps)
			next := make(chan int)
			var wg sync.WaitGroup
			for range parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						r := node.Do(t, "POST", "/v1/locations/"+f.locs[i%locations].Location.ID+"/sync", f.token, map[string]string{"kind": "users"})
						answers[i] = answer{r.Status, string(r.Body)}
					}
				}()
			}
			var batchID string
			for i := range taps {
				if i == taps/4 {
					batchID = f.startBatch(t, map[string]any{"kind": "users", "scope": "all"}).ID
				}
				next <- i
			}
			close(next)
			wg.Wait()

			counts := map[int]int{}
			for i, a := range answers {
				counts[a.status]++
				switch a.status {
				case http.StatusAccepted, http.StatusOK:
				default:
					t.Errorf("tap %d: %d %s", i, a.status, a.body)
				}
			}
			t.Logf("tap answers by status: %v", counts)
			done := f.waitBatch(t, batchID)
			if done.Queued != 0 || done.Running != 0 || done.Succeeded+done.Failed+done.Cancelled+done.Skipped != locations {
				t.Fatalf("finished batch %+v, want every one of %d locations accounted for", done, locations)
			}
		})
	}
}

// TestBatch_ChunkRunAgainAfterADeadlock_StillCoversEveryLocation: when the
// transaction that creates a chunk of a batch's runs loses a lock race at
// its last statement, it is run again from the chunk's start, so every
// location still gets its run and the batch counts each once.
func TestBatch_ChunkRunAgainAfterADeadlock_StillCoversEveryLocation(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			f := newFleet(t, node, "Retried", 3, 3, sim.Options{Users: 2})
			failOnce(t, node.Store.DB(), func(stmt *gorm.Statement) bool {
				fields, ok := stmt.Dest.(map[string]any)
				_, advancing := fields["expand_cursor"]
				return ok && advancing
			})
			start := f.startBatch(t, map[string]any{"kind": "users", "scope": "all"})
			done := f.waitBatch(t, start.ID)
			if done.Succeeded != 3 || done.Failed != 0 || done.Skipped != 0 {
				t.Fatalf("finished batch %+v, want a run at each of the 3 locations", done)
			}
		})
	}
}

// failOnce makes the first update that match selects answer a deadlock,
// as InnoDB does to the transaction it rolls back.
func failOnce(t *testing.T, db *gorm.DB, match func(*gorm.Statement) bool) {
	t.Helper()
	var once sync.Once
	err := db.Callback().Update().Before("gorm:update").Register("test:deadlock_once", func(tx *gorm.DB) {
		if match(tx.Statement) {
			once.Do(func() {
				_ = tx.AddError(&gomysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"})
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}
