package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// TestClaimRuns_TakeoverAndHandBack_CountNoAttempt follows a run through
// a claim, a takeover after its node was lost and a hand-back by a node
// stopping: only the first claim counts an attempt, the takeover is
// counted apart, and the hand-back makes the run due at once for the next
// claim, which starts the same attempt again.
func TestClaimRuns_TakeoverAndHandBack_CountNoAttempt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		now := time.Now().UTC().Truncate(time.Second)
		_, run := rankedLocation(t, store, acct, "lost", 0, now)
		load := func() models.Run {
			t.Helper()
			r, err := store.RunForWorker(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		claim := func(owner string, at time.Time) models.Run {
			t.Helper()
			got, err := store.ClaimRuns(ctx, owner, 1, at, at.Add(time.Minute), 0, nil)
			if err != nil || len(got) != 1 || got[0].ID != run.ID {
				t.Fatalf("%s claimed %v, %v", owner, got, err)
			}
			return got[0]
		}

		if r := claim("node-a", now); r.Attempt != 1 || r.Takeovers != 0 {
			t.Fatalf("first claim: attempt %d, takeovers %d; want 1, 0", r.Attempt, r.Takeovers)
		}
		// node-a is lost: its lease runs out and node-b takes the run over.
		later := now.Add(2 * time.Minute)
		if r := claim("node-b", later); r.Attempt != 1 || r.Takeovers != 1 {
			t.Fatalf("takeover: attempt %d, takeovers %d; want 1, 1", r.Attempt, r.Takeovers)
		}
		if err := store.ReleaseRun(ctx, run.ID, "node-a", later); !models.IsLeaseLost(err) {
			t.Fatalf("the lost node handed back a run it no longer holds: %v", err)
		}

		// node-b stops and hands the run back: queued, due now, no lease,
		// its attempt not counted.
		if err := store.ReleaseRun(ctx, run.ID, "node-b", later); err != nil {
			t.Fatal(err)
		}
		r := load()
		if r.State != models.RunQueued || r.LeaseOwner != "" || r.LeaseExpiresAt != nil || r.Attempt != 0 || r.Takeovers != 1 {
			t.Fatalf("handed-back run %+v", r)
		}
		if !r.AvailableAt.Equal(later) {
			t.Fatalf("handed-back run due at %v, want %v", r.AvailableAt, later)
		}
		if r := claim("node-c", later); r.Attempt != 1 || r.Takeovers != 1 {
			t.Fatalf("claim after hand-back: attempt %d, takeovers %d; want 1, 1", r.Attempt, r.Takeovers)
		}
		if err := store.ReleaseRun(ctx, run.ID, "node-b", later); !models.IsLeaseLost(err) {
			t.Fatalf("a second hand-back by node-b: %v", err)
		}
	})
}
