package migrations_test

import (
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_Imports_AddTheUploadTableAndRunColumnsAndRollThemBack(t *testing.T) {
	runColumns := []string{"import_id", "reapplied_from", "codes", "approved_by"}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			if !db.Migrator().HasTable("imports") {
				t.Fatal("no imports table after up")
			}
			for _, col := range runColumns {
				if !db.Migrator().HasColumn("runs", col) {
					t.Errorf("runs lacks %s after up", col)
				}
			}
			if !db.Migrator().HasColumn("batches", "held_reported_at") {
				t.Error("batches lacks held_reported_at after up")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_import_id") {
				t.Error("runs lacks the index that finds an upload's runs")
			}
			rollBackThrough(t, db, "202612020012_imports")
			if db.Migrator().HasTable("imports") {
				t.Error("the imports table is still there after rolling back")
			}
			for _, col := range runColumns {
				if db.Migrator().HasColumn("runs", col) {
					t.Errorf("runs.%s still exists after rolling back", col)
				}
			}
			if db.Migrator().HasColumn("batches", "held_reported_at") {
				t.Error("batches.held_reported_at still exists after rolling back")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_account_created") {
				t.Error("rolling back lost the runs table's other indexes")
			}
		})
	}
}
