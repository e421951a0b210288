package migrations_test

import (
	"context"
	"testing"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_RunTakeovers_AddTheCountAndRollItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up: %v", err)
			}
			if !db.Migrator().HasColumn("runs", "takeovers") {
				t.Fatal("runs lacks takeovers after up")
			}
			for applied(t, db, "202612020016_run_takeovers") {
				if err := migrations.Down(ctx, db); err != nil {
					t.Fatalf("down: %v", err)
				}
			}
			if db.Migrator().HasColumn("runs", "takeovers") {
				t.Error("runs.takeovers still exists after rolling back")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_state_rank_available") {
				t.Error("rolling back lost the runs table's indexes")
			}
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up again after rolling back: %v", err)
			}
		})
	}
}
