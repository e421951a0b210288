package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202611210003 adds single-use tickets for browser WebSockets
// and the grants that let support staff watch a customer account.

type v3RealtimeTicket struct {
	ID        string `gorm:"primaryKey;size:36"`
	TokenHash string `gorm:"size:64;not null;uniqueIndex"`
	LoginID   string `gorm:"size:36;not null"`
	SessionID string `gorm:"size:36;not null"`
	// AccessExpiresAt is when the access token that asked for the ticket
	// expires: the connection it opens ends then too.
	AccessExpiresAt time.Time
	ExpiresAt       time.Time `gorm:"index"`
	UsedAt          *time.Time
	CreatedAt       time.Time
}

func (v3RealtimeTicket) TableName() string { return "realtime_tickets" }

type v3StaffGrant struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID string `gorm:"size:36;not null;uniqueIndex:idx_staff_grants_account_login,priority:1"`
	LoginID   string `gorm:"size:36;not null;uniqueIndex:idx_staff_grants_account_login,priority:2;index"`
	GrantedBy string `gorm:"size:36;not null"`
	ExpiresAt *time.Time
	CreatedAt time.Time
}

func (v3StaffGrant) TableName() string { return "staff_grants" }

func v3Realtime() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611210003_realtime",
		Migrate: func(tx *gorm.DB) error {
			if err := tx.Migrator().CreateTable(&v3RealtimeTicket{}, &v3StaffGrant{}); err != nil {
				return err
			}
			// Retention deletes the oldest events first.
			return tx.Exec("CREATE INDEX idx_events_occurred ON events (occurred_at)").Error
		},
		Rollback: func(tx *gorm.DB) error {
			if err := tx.Migrator().DropIndex("events", "idx_events_occurred"); err != nil {
				return err
			}
			return tx.Migrator().DropTable(&v3StaffGrant{}, &v3RealtimeTicket{})
		},
	}
}
