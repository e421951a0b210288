package migrations_test

import (
	"context"
	"testing"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_ForcedSyncs_IndexTheFlagAndRollItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up: %v", err)
			}
			if !db.Migrator().HasIndex("locations", "idx_locations_force_pending") {
				t.Fatal("locations lacks the index the forced-sync list is read by")
			}
			for applied(t, db, "202612030018_forced_syncs") {
				if err := migrations.Down(ctx, db); err != nil {
					t.Fatalf("down: %v", err)
				}
			}
			if db.Migrator().HasIndex("locations", "idx_locations_force_pending") {
				t.Error("the index still exists after rolling back")
			}
			if !db.Migrator().HasIndex("locations", "idx_locations_account_name") {
				t.Error("rolling back lost the locations table's other indexes")
			}
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up again after rolling back: %v", err)
			}
		})
	}
}
