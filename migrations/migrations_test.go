package migrations_test

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_UpDownUp_LeavesACurrentSchema(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)

			st, err := migrations.Status(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if st.AppliedCount() != 0 {
				t.Fatalf("fresh database reports %d applied migrations", st.AppliedCount())
			}

			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up: %v", err)
			}
			assertCurrent(t, ctx, db, true)
			for _, table := range []string{"accounts", "logins", "sessions", "refresh_tokens", "locations", "panels", "panel_users", "runs", "events", "audit_entries", "api_keys", "nodes", "readiness_checks"} {
				if !db.Migrator().HasTable(table) {
					t.Errorf("table %s missing after up", table)
				}
			}
			if !db.Migrator().HasIndex("events", "idx_events_account_offset") {
				t.Error("events lacks its (account_id, log_offset) index")
			}
			if !db.Migrator().HasIndex("panels", "idx_panels_connection_node") {
				t.Error("panels lacks the index the search for a lost node's panels uses")
			}
			if !db.Migrator().HasIndex("runs", "idx_runs_state_available") {
				t.Error("runs lacks its queue index")
			}

			// Up again is a no-op.
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("second up: %v", err)
			}

			if err := migrations.DownAll(ctx, db); err != nil {
				t.Fatalf("down: %v", err)
			}
			assertCurrent(t, ctx, db, false)
			for _, table := range []string{"locations", "readiness_checks"} {
				if db.Migrator().HasTable(table) {
					t.Errorf("%s still exists after rolling everything back", table)
				}
			}

			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up after down: %v", err)
			}
			assertCurrent(t, ctx, db, true)
		})
	}
}

func assertCurrent(t *testing.T, ctx context.Context, db *gorm.DB, want bool) {
	t.Helper()
	st, err := migrations.Status(ctx, db)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Current() != want {
		t.Fatalf("schema current = %v, want %v (%d of %d applied)", st.Current(), want, st.AppliedCount(), len(st.Migrations))
	}
}
