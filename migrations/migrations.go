// Package migrations holds the versioned schema. Each migration has a
// rollback; both run on MySQL/MariaDB and on SQLite.
package migrations

import (
	"context"
	"fmt"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"

	"github.com/panelsync/panelsync/models"
)

// TableName is where applied migration ids are recorded.
const TableName = "schema_migrations"

// all lists every migration in the order it applies. Ids are timestamps so
// that they sort and never collide between branches.
func all() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		{
			ID: "202611210001_initial",
			Migrate: func(tx *gorm.DB) error {
				return tx.Migrator().CreateTable(initialTables()...)
			},
			Rollback: func(tx *gorm.DB) error {
				tables := initialTables()
				for i := len(tables) - 1; i >= 0; i-- {
					if err := tx.Migrator().DropTable(tables[i]); err != nil {
						return err
					}
				}
				return nil
			},
		},
		v2PanelLink(),
		v3Realtime(),
		v4Batches(),
		v5BatchTrigger(),
		v6Nodes(),
		v7MailQueue(),
		v8People(),
		v9Hold(),
		v10UserChange(),
		v11PeopleLookup(),
		v12Imports(),
		v13Links(),
		v14Ranks(),
		v15ConsoleReads(),
		v16RunTakeovers(),
		v17Readiness(),
		v18ForcedSyncs(),
	}
}

func initialTables() []any {
	return []any{
		&v1Account{}, &v1Login{}, &v1Session{}, &v1RefreshToken{},
		&v1Location{}, &v1Panel{}, &v1PanelUser{}, &v1Run{}, &v1Event{},
		&v1AuditEntry{}, &v1APIKey{},
	}
}

func newMigrator(ctx context.Context, db *gorm.DB) *gormigrate.Gormigrate {
	opts := *gormigrate.DefaultOptions
	opts.TableName = TableName
	opts.IDColumnSize = 64
	// Each migration runs in its own transaction where the database allows
	// it; MySQL commits DDL implicitly, so a failed step there is undone by
	// its rollback instead.
	opts.UseTransaction = db.Dialector.Name() == "sqlite"
	// A migration's statement (an index built on a large table) may run
	// far longer than the bound other statements are held to.
	return gormigrate.New(db.WithContext(models.Unbounded(ctx)), &opts, all())
}

// Up applies every migration not yet applied.
func Up(ctx context.Context, db *gorm.DB) error {
	if err := newMigrator(ctx, db).Migrate(); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down rolls back the most recent migration.
func Down(ctx context.Context, db *gorm.DB) error {
	if err := newMigrator(ctx, db).RollbackLast(); err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// DownAll rolls back every applied migration, newest first.
func DownAll(ctx context.Context, db *gorm.DB) error {
	for {
		st, err := Status(ctx, db)
		if err != nil {
			return err
		}
		if st.AppliedCount() == 0 {
			return nil
		}
		if err := Down(ctx, db); err != nil {
			return err
		}
	}
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	ID      string
	Applied bool
}

// StatusReport lists every known migration and any applied id this binary
// does not know (a newer binary ran against this database).
type StatusReport struct {
	Migrations []MigrationStatus
	Unknown    []string
}

// AppliedCount returns how many known migrations are applied.
func (r StatusReport) AppliedCount() int {
	n := 0
	for _, m := range r.Migrations {
		if m.Applied {
			n++
		}
	}
	return n
}

// Current reports whether every known migration is applied.
func (r StatusReport) Current() bool {
	return r.AppliedCount() == len(r.Migrations)
}

// Status reads which migrations are applied.
func Status(ctx context.Context, db *gorm.DB) (StatusReport, error) {
	var report StatusReport
	applied := map[string]bool{}
	conn := db.WithContext(ctx)
	if conn.Migrator().HasTable(TableName) {
		var ids []string
		if err := conn.Table(TableName).Pluck("id", &ids).Error; err != nil {
			return report, fmt.Errorf("read %s: %w", TableName, err)
		}
		for _, id := range ids {
			applied[id] = true
		}
	}
	known := map[string]bool{}
	for _, m := range all() {
		known[m.ID] = true
		report.Migrations = append(report.Migrations, MigrationStatus{ID: m.ID, Applied: applied[m.ID]})
	}
	for id := range applied {
		if !known[id] {
			report.Unknown = append(report.Unknown, id)
		}
	}
	return report, nil
}
