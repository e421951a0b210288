package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestWorkerKilledHoldingLease_RunIsTakenOverAndAppliedOnce plays a worker
// that claims a run and dies: its lease expires, a live worker takes the run
// over and finishes it, and when the dead worker's late result arrives it
// is refused and applies nothing.
func TestWorkerKilledHoldingLease_RunIsTakenOverAndAppliedOnce(t *testing.T) {
	tweak := func(c *app.Config) { c.RunLease = time.Second }
	forEachBackend(t, tweak, sim.Options{Users: 5}, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		n, store := tb.node, tb.node.Store
		// The panel's first link synced its five users; the run below
		// finds one more, added at the keypad.
		if err := tb.panel.PutUser(panel.User{Number: 60, Name: "Night Guard", Authority: panel.AuthorityStandard, Partitions: []int{1}}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()

		run := enqueueForDeadWorkers(t, tb, now)
		claimed, err := store.ClaimRuns(ctx, "dead-worker", 1, now.Add(time.Hour), now.Add(time.Second), 0, nil)
		if err != nil || len(claimed) != 1 || claimed[0].ID != run.ID {
			t.Fatalf("dead worker claim: %v %v", claimed, err)
		}

		// The live engine takes the run once the lease has run out. The
		// dead worker's attempt was cut short by its node, not failed by
		// the panel: the takeover starts it again under its number.
		n.App.Engine().Wake()
		finished := n.WaitRun(t, tb.token, run.ID)
		if finished.State != "succeeded" || finished.Attempt != 1 || finished.Changes.Added != 1 || finished.Changes.Unchanged != 5 {
			t.Fatalf("taken-over run %+v", finished)
		}

		// The dead worker wakes up and tries to apply its own result.
		late := store.Tx(ctx, func(ctx context.Context) error {
			extra := models.PanelUser{ID: models.NewID(), LocationID: tb.loc.Location.ID, UserNumber: 999, Name: "Ghost", Authority: "standard"}
			if err := store.ApplyPanelUsers(ctx, tb.loc.Location.ID, []models.PanelUser{extra}, nil, nil, models.UsersReceipt{}); err != nil {
				return err
			}
			return store.FinishRun(ctx, run.ID, "dead-worker", models.RunOutcome{State: models.RunSucceeded, Added: 1}, time.Now())
		})
		if !models.IsLeaseLost(late) {
			t.Fatalf("late finish by the dead worker: %v", late)
		}
		users, err := store.PanelUsers(ctx, tb.loc.Location.ID)
		if err != nil || len(users) != 6 {
			t.Fatalf("remote copy has %d users (%v): the run's changes must apply exactly once", len(users), err)
		}
		succeeded := 0
		for _, e := range n.Events(t, tb.token, tb.loc.Location.ID) {
			if e.Type == "sync.succeeded" && e.RunID != nil && *e.RunID == run.ID {
				succeeded++
			}
		}
		if succeeded != 1 {
			t.Fatalf("%d sync.succeeded events, want 1", succeeded)
		}
	})
}

// enqueueForDeadWorkers queues a users run an hour from now, so that no
// live worker claims it first; dead workers claim it by pretending it is
// later already.
func enqueueForDeadWorkers(t *testing.T, tb *testBundle, now time.Time) models.Run {
	t.Helper()
	run, _, err := tb.node.Store.EnqueueRun(context.Background(), models.Run{
		AccountID: tb.acct.ID, LocationID: tb.loc.Location.ID, Kind: models.RunUsers,
		Mode: models.ModeFull, TriggerSource: models.TriggerApp, AvailableAt: now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}
