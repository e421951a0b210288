package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020012 lets integrators upload user lists. An import
// keeps the files as uploaded, codes masked, once for all the runs it
// starts; a batch notes when it told its locations' report e-mails that
// all its runs left wait for a person; each import run names its import, keeps its own location's codes
// sealed for a later re-apply, and says who approved its push. A re-apply
// names the run it restores.

type v12Import struct {
	ID          string `gorm:"primaryKey;size:36"`
	AccountID   string `gorm:"size:36;not null;index"`
	BatchID     string `gorm:"size:36;not null;index"`
	RequestedBy string `gorm:"size:254;not null;default:''"`
	Format      string `gorm:"size:8;not null"`
	FileName    string `gorm:"size:255;not null;default:''"`
	Rows        int    `gorm:"not null"`
	Data        []byte `gorm:"type:longblob"`
	Control     []byte `gorm:"type:longblob"`
	CreatedAt   time.Time
}

func (v12Import) TableName() string { return "imports" }

type v12Run struct {
	ImportID      *string `gorm:"size:36;index"`
	ReappliedFrom *string `gorm:"size:36"`
	Codes         []byte  `gorm:"type:longblob"`
	ApprovedBy    string  `gorm:"size:254;not null;default:''"`
}

func (v12Run) TableName() string { return "runs" }

type v12Batch struct {
	HeldReportedAt *time.Time
}

func (v12Batch) TableName() string { return "batches" }

func v12Imports() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020012_imports",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&v12Import{}); err != nil {
				return err
			}
			for _, col := range []string{"ImportID", "ReappliedFrom", "Codes", "ApprovedBy"} {
				if err := tx.Migrator().AddColumn(&v12Run{}, col); err != nil {
					return err
				}
			}
			if err := tx.Migrator().CreateIndex(&v12Run{}, "ImportID"); err != nil {
				return err
			}
			return tx.Migrator().AddColumn(&v12Batch{}, "HeldReportedAt")
		},
		Rollback: func(tx *gorm.DB) error {
			if err := dropColumn(tx, "batches", "held_reported_at"); err != nil {
				return err
			}
			if err := tx.Migrator().DropIndex(&v12Run{}, "ImportID"); err != nil {
				return err
			}
			for _, col := range []string{"approved_by", "codes", "reapplied_from", "import_id"} {
				if err := dropColumn(tx, "runs", col); err != nil {
					return err
				}
			}
			return tx.Migrator().DropTable(&v12Import{})
		},
	}
}
