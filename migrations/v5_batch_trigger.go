package migrations

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202611210005 records on each batch what triggered it, so that
// the runs it creates in the background carry the same trigger as a single
// run would: "api" when an API key asked, "app" otherwise.

type v5Batch struct {
	TriggerSource string `gorm:"size:16;not null;default:'app'"`
}

func (v5Batch) TableName() string { return "batches" }

func v5BatchTrigger() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611210005_batch_trigger",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().AddColumn(&v5Batch{}, "TriggerSource")
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropColumn(&v5Batch{}, "TriggerSource")
		},
	}
}
