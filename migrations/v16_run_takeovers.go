package migrations

import (
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020016 counts, per run, the times a node took it over
// after the node running it stopped answering. Such an interruption is
// not the panel's fault and no longer counts as an attempt; the count
// bounds a run that kills every node that runs it.

type v16Run struct {
	Takeovers int `gorm:"not null;default:0"`
}

func (v16Run) TableName() string { return "runs" }

func v16RunTakeovers() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020016_run_takeovers",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().AddColumn(&v16Run{}, "Takeovers")
		},
		Rollback: func(tx *gorm.DB) error {
			return dropColumn(tx, "runs", "takeovers")
		},
	}
}
