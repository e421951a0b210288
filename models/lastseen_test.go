package models_test

import (
	"context"
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
