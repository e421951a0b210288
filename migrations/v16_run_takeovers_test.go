package migrations_test

import (
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_RunTakeovers_AddTheCountAndRollItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			if !db.Migrator().HasColumn("runs", "takeovers") {
				t.Fatal("runs lacks takeovers after up")
			}
			rollBackThrough(t, db, "202612020016_run_takeovers")
			if db.Migrator().HasColumn("runs", "takeovers") {
				t.Error("runs.takeovers still exists after rolling back")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_state_rank_available") {
				t.Error("rolling back lost the runs table's indexes")
			}
			migrateUp(t, db)
		})
	}
}
