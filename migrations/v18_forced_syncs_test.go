package migrations_test

import (
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_ForcedSyncs_IndexTheFlagAndRollItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			if !db.Migrator().HasIndex("locations", "idx_locations_force_pending") {
				t.Fatal("locations lacks the index the forced-sync list is read by")
			}
			rollBackThrough(t, db, "202612030018_forced_syncs")
			if db.Migrator().HasIndex("locations", "idx_locations_force_pending") {
				t.Error("the index still exists after rolling back")
			}
			if !db.Migrator().HasIndex("locations", "idx_locations_account_name") {
				t.Error("rolling back lost the locations table's other indexes")
			}
			migrateUp(t, db)
		})
	}
}
