package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_ConsoleReads_NameTheLoggedEventsAndRollBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			rollBackThrough(t, db, "202612020015_console_reads")
			if db.Migrator().HasColumn("events", "location_name") {
				t.Fatal("events.location_name still exists after rolling back")
			}
			if db.Migrator().HasIndex("runs", "idx_runs_location_state_finished") {
				t.Error("the runs index is still there after rolling back")
			}
			if !db.Migrator().HasIndex("events", "idx_events_account_location") {
				t.Error("rolling back lost the events table's other indexes")
			}

			// Entries written before the migration: one about a location,
			// one account-wide.
			store := models.NewStore(db)
			acct, err := store.CreateAccount(ctx, "Backfill")
			if err != nil {
				t.Fatal(err)
			}
			name := "Harbour Street Store"
			loc, err := store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
				Settings: models.LocationSettings{Name: &name}, PanelSerial: "PNL-BACKFILL", SecretHash: "00",
			})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			rows := []map[string]any{
				{"id": models.NewID(), "account_id": acct.ID, "log_offset": 1, "location_id": loc.Location.ID, "type": "panel.checkin", "severity": "info", "message": "Panel checked in", "data": "{}", "occurred_at": now},
				{"id": models.NewID(), "account_id": acct.ID, "log_offset": 2, "location_id": nil, "type": "batch.finished", "severity": "info", "message": "All locations: 1 succeeded", "data": "{}", "occurred_at": now},
			}
			for _, r := range rows {
				if err := db.Table("events").Create(r).Error; err != nil {
					t.Fatal(err)
				}
			}

			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up again: %v", err)
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_location_state_finished") {
				t.Error("runs lacks the index that finds a location's latest run in a state")
			}
			var got []struct {
				LogOffset    int64
				LocationName *string
			}
			if err := db.Table("events").Select("log_offset", "location_name").Order("log_offset").Find(&got).Error; err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("%d events after up, want 2", len(got))
			}
			if got[0].LocationName == nil || *got[0].LocationName != name {
				t.Errorf("the location's entry is named %v, want %q", got[0].LocationName, name)
			}
			if got[1].LocationName != nil {
				t.Errorf("the account-wide entry is named %q, want none", *got[1].LocationName)
			}
		})
	}
}
