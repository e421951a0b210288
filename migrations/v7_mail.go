package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020007 adds the outgoing mail queue. Each node's sender
// claims due mails through idx_mails_state_next, the way the run queue
// claims runs: queued mails by when they are due, and mails whose sender
// died by when their lease ran out.

type v7Mail struct {
	ID             string    `gorm:"primaryKey;size:36"`
	AccountID      *string   `gorm:"size:36;index:idx_mails_account_created,priority:1"`
	Kind           string    `gorm:"size:32;not null"`
	Recipient      string    `gorm:"size:320;not null"`
	Subject        string    `gorm:"size:500;not null"`
	SealedBody     string    `gorm:"type:mediumtext;not null"`
	State          string    `gorm:"size:16;not null;index:idx_mails_state_next,priority:1"`
	Attempts       int       `gorm:"not null;default:0"`
	NextAttemptAt  time.Time `gorm:"not null;index:idx_mails_state_next,priority:2"`
	LeaseOwner     string    `gorm:"size:64;not null;default:''"`
	LeaseExpiresAt *time.Time
	LastError      string    `gorm:"size:500;not null;default:''"`
	CreatedAt      time.Time `gorm:"not null;index:idx_mails_account_created,priority:2"`
	SentAt         *time.Time
	FailedAt       *time.Time
}

func (v7Mail) TableName() string { return "mails" }

func v7MailQueue() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020007_mail_queue",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&v7Mail{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&v7Mail{})
		},
	}
}
