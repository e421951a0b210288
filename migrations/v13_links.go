package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020013 links panel users to logins, so that a person is
// one person across an account's locations: a link names the login and the
// user slot at a location, is a draft until someone saves it, and says
// what is kept in sync for the person and where they are propagated.

type v13Link struct {
	ID             string `gorm:"primaryKey;size:36"`
	AccountID      string `gorm:"size:36;not null;index:idx_links_account_state,priority:1"`
	LoginID        string `gorm:"size:36;not null;uniqueIndex:idx_links_login_location,priority:1"`
	LocationID     string `gorm:"size:36;not null;uniqueIndex:idx_links_login_location,priority:2;uniqueIndex:idx_links_location_number,priority:1"`
	UserNumber     int    `gorm:"not null;uniqueIndex:idx_links_location_number,priority:2"`
	State          string `gorm:"size:16;not null;index:idx_links_account_state,priority:2"`
	SyncCode       bool   `gorm:"not null;default:true"`
	SyncSchedule   bool   `gorm:"not null;default:true"`
	SyncPartitions bool   `gorm:"not null;default:true"`
	Propagate      string `gorm:"size:8;not null;default:'none'"`
	CreatedBy      string `gorm:"size:254;not null;default:''"`
	SavedAt        *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (v13Link) TableName() string { return "links" }

func v13Links() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020013_links",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&v13Link{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&v13Link{})
		},
	}
}
