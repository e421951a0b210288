package migrations

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020009 lets a users run wait for a person: a run keeps
// what its apply needs while it is held, and a location's safety
// threshold gains a count of changed users beside its percentage.

type v9Run struct {
	Pending []byte `gorm:"type:longblob"`
}

func (v9Run) TableName() string { return "runs" }

type v9Location struct {
	SafetyThresholdCount int `gorm:"not null;default:0"`
}

func (v9Location) TableName() string { return "locations" }

func v9Hold() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020009_hold",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().AddColumn(&v9Run{}, "Pending"); err != nil {
				return err
			}
			return tx.Migrator().AddColumn(&v9Location{}, "SafetyThresholdCount")
		},
		Rollback: func(tx *gorm.DB) error {
			if err := dropColumn(tx, "locations", "safety_threshold_count"); err != nil {
				return err
			}
			return dropColumn(tx, "runs", "pending")
		},
	}
}

// dropColumn drops a column with the database's own ALTER TABLE. GORM's
// SQLite migrator instead rebuilds the table, which loses indexes that
// later rollbacks expect to drop; SQLite has dropped columns in place
// since 3.35.
func dropColumn(tx *gorm.DB, table, column string) error {
	return tx.Exec("ALTER TABLE " + table + " DROP COLUMN " + quoteColumn(tx, column)).Error
}
