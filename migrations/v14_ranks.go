package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020014 adds worker ranks. A location has a rank, and
// each of its runs carries a copy, so that a claim reads one table and
// keeps SKIP LOCKED to the runs it takes; the index serves the claim of a
// node that serves a few ranks. A node's heartbeat row lists the ranks it
// serves, so that any node can tell a rank no running node serves, and
// stranded_ranks remembers, per account, the ranks whose waiting runs have
// been reported stranded, so that the warning is written once per episode
// whichever node notices first.

type v14Location struct {
	WorkerRank int `gorm:"not null;default:0"`
}

func (v14Location) TableName() string { return "locations" }

type v14Run struct {
	State       string    `gorm:"size:16;not null;index:idx_runs_state_rank_available,priority:1"`
	WorkerRank  int       `gorm:"not null;default:0;index:idx_runs_state_rank_available,priority:2"`
	AvailableAt time.Time `gorm:"index:idx_runs_state_rank_available,priority:3"`
}

func (v14Run) TableName() string { return "runs" }

type v14Node struct {
	Ranks string `gorm:"size:255;not null;default:''"`
}

func (v14Node) TableName() string { return "nodes" }

type v14StrandedRank struct {
	AccountID  string    `gorm:"primaryKey;size:36"`
	WorkerRank int       `gorm:"primaryKey;autoIncrement:false"`
	Since      time.Time `gorm:"not null"`
}

func (v14StrandedRank) TableName() string { return "stranded_ranks" }

func v14Ranks() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020014_ranks",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().AddColumn(&v14Location{}, "WorkerRank"); err != nil {
				return err
			}
			if err := tx.Migrator().AddColumn(&v14Run{}, "WorkerRank"); err != nil {
				return err
			}
			if err := tx.Migrator().CreateIndex(&v14Run{}, "idx_runs_state_rank_available"); err != nil {
				return err
			}
			if err := tx.Migrator().AddColumn(&v14Node{}, "Ranks"); err != nil {
				return err
			}
			return tx.Migrator().CreateTable(&v14StrandedRank{})
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropTable(&v14StrandedRank{}); err != nil {
				return err
			}
			if err := dropColumn(tx, "nodes", "ranks"); err != nil {
				return err
			}
			if err := tx.Migrator().DropIndex(&v14Run{}, "idx_runs_state_rank_available"); err != nil {
				return err
			}
			if err := dropColumn(tx, "runs", "worker_rank"); err != nil {
				return err
			}
			return dropColumn(tx, "locations", "worker_rank")
		},
	}
}
