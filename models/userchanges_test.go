package models_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestClaimDueUsersChanges_OffersOnlyLocationsWhoseSyncCanStart(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		now := time.Now().UTC()
		cases := []struct {
			name      string
			connected bool
			due       time.Time
			run       models.RunState // "" for none
			offered   bool
		}{
			{"due and connected", true, now.Add(-time.Second), "", true},
			{"due with a users run queued", true, now.Add(-time.Minute), models.RunQueued, true},
			{"due but offline", false, now.Add(-time.Second), "", false},
			{"due with a users run running", true, now.Add(-time.Second), models.RunRunning, false},
			{"due with a users run held", true, now.Add(-time.Second), models.RunAwaitingApply, false},
			{"not due yet", true, now.Add(time.Minute), "", false},
		}
		names := map[string]string{}
		for i, tc := range cases {
			v := createLocation(t, store, acct, tc.name, fmt.Sprintf("SER-%04d", i))
			names[v.Location.ID] = tc.name
			if tc.connected {
				if _, err := store.MarkPanelConnected(ctx, v.Panel.ID, "link", "node", now); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.SetUsersChangeDue(ctx, v.Location.ID, tc.due); err != nil {
				t.Fatal(err)
			}
			if tc.run != "" {
				r, _, err := store.EnqueueRun(ctx, models.Run{AccountID: acct.ID, LocationID: v.Location.ID, Kind: models.RunUsers,
					Mode: models.ModeIncremental, TriggerSource: models.TriggerApp, AvailableAt: now.Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				if err := store.DB().Model(&models.Run{}).Where("id = ?", r.ID).Update("state", tc.run).Error; err != nil {
					t.Fatal(err)
				}
			}
		}

		// A pass that declines everything it is offered keeps every due
		// time.
		var offered []string
		n, err := store.ClaimDueUsersChanges(ctx, now, 10, func(ctx context.Context, v models.LocationView) (bool, error) {
			offered = append(offered, names[v.Location.ID])
			return false, nil
		})
		if err != nil || n != 0 {
			t.Fatalf("declining pass took %d (%v)", n, err)
		}
		// Oldest due first.
		if want := []string{"due with a users run queued", "due and connected"}; !slices.Equal(offered, want) {
			t.Fatalf("offered %q, want %q", offered, want)
		}

		offered = nil
		n, err = store.ClaimDueUsersChanges(ctx, now, 10, func(ctx context.Context, v models.LocationView) (bool, error) {
			offered = append(offered, names[v.Location.ID])
			return true, nil
		})
		if err != nil || n != 2 || len(offered) != 2 {
			t.Fatalf("taking pass took %d of %q (%v)", n, offered, err)
		}
		for id, name := range names {
			v, err := store.LocationByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			taken := slices.Contains(offered, name)
			if (v.Location.UsersChangeDueAt == nil) != taken {
				t.Errorf("%s: due %v after the pass, taken %v", name, v.Location.UsersChangeDueAt, taken)
			}
		}
		if n, err := store.ClaimDueUsersChanges(ctx, now, 10, func(context.Context, models.LocationView) (bool, error) {
			t.Error("a taken location was offered again")
			return true, nil
		}); err != nil || n != 0 {
			t.Fatalf("third pass took %d (%v)", n, err)
		}

		// The next due time to wake for is the one not yet due; the ones
		// already passed wait for their panel or a person.
		next, err := store.NextUsersChangeDue(ctx, now)
		if err != nil || next.Sub(cases[5].due).Abs() > time.Millisecond {
			t.Fatalf("next due %v (%v), want %v", next, err, cases[5].due)
		}
		if next, err := store.NextUsersChangeDue(ctx, now.Add(time.Hour)); err != nil || !next.IsZero() {
			t.Fatalf("next due after an hour %v (%v), want none", next, err)
		}
	})
}
