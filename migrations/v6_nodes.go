package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202611210006 adds the nodes table: every serving node writes
// its heartbeat there, so that the others can tell when one has stopped
// without closing its panel links (a crash, a lost machine) and mark those
// panels disconnected.

type v6Node struct {
	ID          string    `gorm:"primaryKey;size:64"`
	StartedAt   time.Time `gorm:"not null"`
	HeartbeatAt time.Time `gorm:"not null;index"`
}

func (v6Node) TableName() string { return "nodes" }

// v6Panel adds the index the search for orphaned panels uses.
type v6Panel struct {
	Connection string `gorm:"size:24;not null;index:idx_panels_connection_node,priority:1"`
	NodeID     string `gorm:"size:64;not null;default:'';index:idx_panels_connection_node,priority:2"`
}

func (v6Panel) TableName() string { return "panels" }

func v6Nodes() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611210006_nodes",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&v6Node{}); err != nil {
				return err
			}
			return tx.Migrator().CreateIndex(&v6Panel{}, "idx_panels_connection_node")
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropIndex(&v6Panel{}, "idx_panels_connection_node"); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&v6Node{})
		},
	}
}
