package migrations

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612030018 indexes the locations flagged for a full users
// sync at their panel's next check-in. Each node reads that short list
// every second, so that a check-in which finds its location not on it
// costs no read of the database.

type v18Location struct {
	ForcePending bool `gorm:"not null;default:false;index:idx_locations_force_pending"`
}

func (v18Location) TableName() string { return "locations" }

func v18ForcedSyncs() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612030018_forced_syncs",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateIndex(&v18Location{}, "idx_locations_force_pending")
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropIndex(&v18Location{}, "idx_locations_force_pending")
		},
	}
}
