package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202611210004 adds All-Locations batches, and the index that
// lets the queue find each account's oldest due run without scanning the
// others'.

type v4Batch struct {
	ID          string `gorm:"primaryKey;size:36"`
	AccountID   string `gorm:"size:36;not null;index:idx_batches_account_created,priority:1"`
	Kind        string `gorm:"size:16;not null"`
	Scope       string `gorm:"size:16;not null"`
	GroupName   string `gorm:"size:100;not null;default:''"`
	LocationIDs string `gorm:"type:text"`
	RequestedBy string `gorm:"size:254;not null;default:''"`
	Total       int    `gorm:"not null"`
	Skipped     int    `gorm:"not null;default:0"`
	// ExpandCursor is the last location id given a run; expansion goes on
	// from there after a crash.
	ExpandCursor string     `gorm:"size:36;not null;default:''"`
	Expanded     bool       `gorm:"not null;default:false;index:idx_batches_expand,priority:1"`
	ExpandOwner  string     `gorm:"size:64;not null;default:''"`
	ExpandLease  *time.Time `gorm:"index:idx_batches_expand,priority:2"`
	State        string     `gorm:"size:16;not null"`
	CancelledAt  *time.Time
	FinishedAt   *time.Time
	ProgressAt   *time.Time
	CreatedAt    time.Time `gorm:"index:idx_batches_account_created,priority:2"`
	UpdatedAt    time.Time
}

func (v4Batch) TableName() string { return "batches" }

func v4Batches() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611210004_batches",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&v4Batch{}); err != nil {
				return err
			}
			return tx.Exec("CREATE INDEX idx_runs_state_account_available ON runs (state, account_id, available_at)").Error
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropIndex("runs", "idx_runs_state_account_available"); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&v4Batch{})
		},
	}
}
