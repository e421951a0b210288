package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202611210002 gives panels their live-link state (which
// connection and node hold them, the last status, the users watermark) and
// adds the remote copy of panel configuration.

type v2Panel struct {
	LinkID         string `gorm:"size:36;not null;default:''"`
	NodeID         string `gorm:"size:64;not null;default:''"`
	ConnectedAt    *time.Time
	StatusJSON     string `gorm:"type:text"`
	UsersWatermark string `gorm:"size:64;not null;default:''"`
}

func (v2Panel) TableName() string { return "panels" }

type v2PanelConfigItem struct {
	ID         string `gorm:"primaryKey;size:36"`
	LocationID string `gorm:"size:36;not null;uniqueIndex:idx_panel_config_items_key,priority:1"`
	Kind       string `gorm:"size:16;not null;uniqueIndex:idx_panel_config_items_key,priority:2"`
	Number     int    `gorm:"not null;uniqueIndex:idx_panel_config_items_key,priority:3"`
	Name       string `gorm:"size:200;not null"`
	Type       string `gorm:"size:32;not null;default:''"`
	Partition  int    `gorm:"not null;default:0"`
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (v2PanelConfigItem) TableName() string { return "panel_config_items" }

func v2PanelColumns() []string {
	return []string{"LinkID", "NodeID", "ConnectedAt", "StatusJSON", "UsersWatermark"}
}

func v2PanelLink() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611210002_panel_link",
		Migrate: func(tx *gorm.DB) error {
			for _, col := range v2PanelColumns() {
				if err := tx.Migrator().AddColumn(&v2Panel{}, col); err != nil {
					return err
				}
			}
			if err := tx.Migrator().CreateTable(&v2PanelConfigItem{}); err != nil {
				return err
			}
			// Run lists page newest first by id (time-ordered), per
			// account and per location.
			for _, stmt := range []string{
				"CREATE INDEX idx_runs_account_id ON runs (account_id, id)",
				"CREATE INDEX idx_runs_location_id ON runs (location_id, id)",
			} {
				if err := tx.Exec(stmt).Error; err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for _, idx := range []string{"idx_runs_account_id", "idx_runs_location_id"} {
				if err := tx.Migrator().DropIndex("runs", idx); err != nil {
					return err
				}
			}
			if err := tx.Migrator().DropTable(&v2PanelConfigItem{}); err != nil {
				return err
			}
			for _, col := range v2PanelColumns() {
				if err := tx.Migrator().DropColumn(&v2Panel{}, col); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
