package migrations_test

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_UserChange_AddsTheIndexedDueTimeAndRollsItBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := dbtest.Open(t, b)
			migrateUp(t, db)
			if !db.Migrator().HasColumn("locations", "users_change_due_at") {
				t.Fatal("locations lacks users_change_due_at after up")
			}
			if !db.Migrator().HasIndex("locations", "idx_locations_users_change_due_at") {
				t.Error("locations lacks the index the schedule loop finds due keypad changes through")
			}
			// Later migrations roll back first, then this one.
			rollBackThrough(t, db, "202612020010_user_change")
			if db.Migrator().HasColumn("locations", "users_change_due_at") {
				t.Error("users_change_due_at still exists after rolling the migration back")
			}
			// The rollback drops the column in place: the table keeps the
			// indexes that older rollbacks drop.
			if !db.Migrator().HasIndex("locations", "idx_locations_account_name") {
				t.Error("rolling back lost the locations table's other indexes")
			}
			migrateUp(t, db)
		})
	}
}

// migrateUp applies every migration.
func migrateUp(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := migrations.Up(context.Background(), db); err != nil {
		t.Fatalf("up: %v", err)
	}
}

// rollBackThrough rolls migrations back, newest first, until the one
// with id is no longer applied.
func rollBackThrough(t *testing.T, db *gorm.DB, id string) {
	t.Helper()
	for applied(t, db, id) {
		if err := migrations.Down(context.Background(), db); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
}

// applied reports whether the migration with id is applied.
func applied(t *testing.T, db *gorm.DB, id string) bool {
	t.Helper()
	st, err := migrations.Status(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Migrations {
		if m.ID == id {
			return m.Applied
		}
	}
	t.Fatalf("no migration %s", id)
	return false
}
