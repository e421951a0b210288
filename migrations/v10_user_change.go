package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020010 lets a change made at a panel's keypad start an
// incremental users sync a short while after the last change: the
// location keeps when that sync is due, indexed so that the schedule loop
// reads only the due locations.

type v10Location struct {
	UsersChangeDueAt *time.Time `gorm:"index"`
}

func (v10Location) TableName() string { return "locations" }

func v10UserChange() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020010_user_change",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().AddColumn(&v10Location{}, "UsersChangeDueAt"); err != nil {
				return err
			}
			return tx.Migrator().CreateIndex(&v10Location{}, "UsersChangeDueAt")
		},
		Rollback: func(tx *gorm.DB) error {
			// SQLite refuses to drop a column that is indexed.
			if err := tx.Migrator().DropIndex(&v10Location{}, "UsersChangeDueAt"); err != nil {
				return err
			}
			return dropColumn(tx, "locations", "users_change_due_at")
		},
	}
}
