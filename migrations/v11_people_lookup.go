package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020011 lets a person be looked up across an account's
// locations: each panel user records when a users run last received it and
// which run, and gains the external id imports will bring, indexed with
// its location so that an exact lookup by external id reads one index
// entry per location.

type v11PanelUser struct {
	LocationID    string `gorm:"size:36;not null;index:idx_panel_users_location_external,priority:1"`
	ExternalID    string `gorm:"size:64;not null;default:'';index:idx_panel_users_location_external,priority:2"`
	ReceivedAt    *time.Time
	ReceivedRunID *string `gorm:"size:36"`
}

func (v11PanelUser) TableName() string { return "panel_users" }

const v11ExternalIndex = "idx_panel_users_location_external"

func v11PeopleLookup() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020011_people_lookup",
		Migrate: func(tx *gorm.DB) error {
			m := tx.Migrator()
			for _, col := range []string{"ExternalID", "ReceivedAt", "ReceivedRunID"} {
				if err := m.AddColumn(&v11PanelUser{}, col); err != nil {
					return err
				}
			}
			return m.CreateIndex(&v11PanelUser{}, v11ExternalIndex)
		},
		Rollback: func(tx *gorm.DB) error {
			// The index goes first: SQLite refuses to drop a column that
			// an index still names.
			if err := tx.Migrator().DropIndex(&v11PanelUser{}, v11ExternalIndex); err != nil {
				return err
			}
			for _, col := range []string{"received_run_id", "received_at", "external_id"} {
				if err := dropColumn(tx, "panel_users", col); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
