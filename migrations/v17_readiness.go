package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020017 adds the table /readyz writes to: one row per
// node, rewritten on every readiness check, so that a database that still
// answers reads but refuses writes (a full disk, a read-only file, a
// replica promoted the wrong way round) is reported not ready.

type v17ReadinessCheck struct {
	NodeID    string    `gorm:"primaryKey;size:64"`
	CheckedAt time.Time `gorm:"not null;index"`
}

func (v17ReadinessCheck) TableName() string { return "readiness_checks" }

func v17Readiness() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020017_readiness_checks",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&v17ReadinessCheck{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&v17ReadinessCheck{})
		},
	}
}
