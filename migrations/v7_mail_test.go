package migrations_test

import (
	"context"
	"testing"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestMigrations_MailQueue_CreatedWithItsClaimIndexAndRolledBack(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatalf("up: %v", err)
			}
			if !db.Migrator().HasTable("mails") {
				t.Fatal("mails table missing after up")
			}
			if !db.Migrator().HasIndex("mails", "idx_mails_state_next") {
				t.Error("mails lacks the (state, next_attempt_at) index its senders claim through")
			}
			if err := migrations.DownAll(ctx, db); err != nil {
				t.Fatalf("down: %v", err)
			}
			if db.Migrator().HasTable("mails") {
				t.Error("mails still exists after rolling everything back")
			}
		})
	}
}
