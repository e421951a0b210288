package migrations_test

import (
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_PeopleLookup_AddsReceiptAndExternalIDAndRollsThemBack(t *testing.T) {
	columns := []string{"external_id", "received_at", "received_run_id"}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			for _, col := range columns {
				if !db.Migrator().HasColumn("panel_users", col) {
					t.Errorf("panel_users lacks %s after up", col)
				}
			}
			if !db.Migrator().HasIndex("panel_users", "idx_panel_users_location_external") {
				t.Error("panel_users lacks the (location_id, external_id) index the lookup by external id reads")
			}
			// Later migrations roll back first, then this one.
			rollBackThrough(t, db, "202612020011_people_lookup")
			for _, col := range columns {
				if db.Migrator().HasColumn("panel_users", col) {
					t.Errorf("%s still exists after rolling the migration back", col)
				}
			}
			// The rollback drops the columns in place: the table keeps the
			// indexes that older rollbacks drop.
			for _, idx := range []string{"idx_panel_users_location_number", "idx_panel_users_email", "idx_panel_users_login_id"} {
				if !db.Migrator().HasIndex("panel_users", idx) {
					t.Errorf("rolling back lost panel_users' index %s", idx)
				}
			}
			migrateUp(t, db)
		})
	}
}
