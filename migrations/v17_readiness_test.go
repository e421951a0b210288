package migrations_test

import (
	"context"
	"testing"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_Readiness_AddTheReadinessTableAndRollItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up: %v", err)
			}
			if !db.Migrator().HasTable("readiness_checks") {
				t.Fatal("no readiness_checks table after up")
			}
			for applied(t, db, "202612020017_readiness_checks") {
				if err := migrations.Down(ctx, db); err != nil {
					t.Fatalf("down: %v", err)
				}
			}
			if db.Migrator().HasTable("readiness_checks") {
				t.Error("readiness_checks still exists after rolling back")
			}
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up again after rolling back: %v", err)
			}
		})
	}
}
