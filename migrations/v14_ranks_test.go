package migrations_test

import (
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_Ranks_AddRankColumnsAndTheStrandedTableAndRollThemBack(t *testing.T) {
	columns := [][2]string{{"locations", "worker_rank"}, {"runs", "worker_rank"}, {"nodes", "ranks"}}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			for _, c := range columns {
				if !db.Migrator().HasColumn(c[0], c[1]) {
					t.Errorf("%s lacks %s after up", c[0], c[1])
				}
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_state_rank_available") {
				t.Error("runs lacks the index a ranked claim uses")
			}
			if !db.Migrator().HasTable("stranded_ranks") {
				t.Error("no stranded_ranks table after up")
			}
			rollBackThrough(t, db, "202612020014_ranks")
			for _, c := range columns {
				if db.Migrator().HasColumn(c[0], c[1]) {
					t.Errorf("%s.%s still exists after rolling back", c[0], c[1])
				}
			}
			if db.Migrator().HasTable("stranded_ranks") {
				t.Error("stranded_ranks still exists after rolling back")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_state_available") {
				t.Error("rolling back lost the runs table's other indexes")
			}
			migrateUp(t, db)
		})
	}
}
