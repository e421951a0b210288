package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020015 serves the web console's reads. Each Event Log
// entry keeps the name its location had when the entry was written, so
// that a log reads by name without a lookup per entry on the realtime
// path; entries already written get their location's current name. The
// runs index finds, per location, the latest run in a state (the failure
// behind sync_failure, the run awaiting Apply behind held) with one seek.

type v15Event struct {
	LocationName *string `gorm:"size:200"`
}

func (v15Event) TableName() string { return "events" }

type v15Run struct {
	LocationID string     `gorm:"size:36;not null;index:idx_runs_location_state_finished,priority:1"`
	State      string     `gorm:"size:16;not null;index:idx_runs_location_state_finished,priority:2"`
	FinishedAt *time.Time `gorm:"index:idx_runs_location_state_finished,priority:3"`
}

func (v15Run) TableName() string { return "runs" }

// v15NamedLocation is what the backfill reads of a location.
type v15NamedLocation struct {
	ID        string
	AccountID string
	Name      string
}

func v15ConsoleReads() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020015_console_reads",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().AddColumn(&v15Event{}, "LocationName"); err != nil {
				return err
			}
			if err := tx.Migrator().CreateIndex(&v15Run{}, "idx_runs_location_state_finished"); err != nil {
				return err
			}
			return v15BackfillEventNames(tx)
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropIndex(&v15Run{}, "idx_runs_location_state_finished"); err != nil {
				return err
			}
			return dropColumn(tx, "events", "location_name")
		},
	}
}

// v15BackfillEventNames names the entries already written, one location
// at a time: each statement walks one location's entries through the
// (account_id, location_id) index, so no statement holds a lock on the
// whole log while a large one is filled.
func v15BackfillEventNames(tx *gorm.DB) error {
	const chunk = 500
	cursor := ""
	for {
		var locs []v15NamedLocation
		err := tx.Table("locations").Select("id", "account_id", "name").
			Where("id > ?", cursor).Order("id").Limit(chunk).Find(&locs).Error
		if err != nil {
			return err
		}
		for _, l := range locs {
			err := tx.Table("events").Where("account_id = ? AND location_id = ? AND location_name IS NULL", l.AccountID, l.ID).
				Update("location_name", l.Name).Error
			if err != nil {
				return err
			}
		}
		if len(locs) < chunk {
			return nil
		}
		cursor = locs[len(locs)-1].ID
	}
}
