package migrations

import (
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Migration 202612020008 brings in people and access: invited and
// deactivated logins with their last sign-in, single-use tokens for
// invitations and password resets, a staff kind of account for support
// logins, and an audit log that keeps the values before and after each
// change and the request that made it, with an index per filter the audit
// endpoint offers.

type v8Account struct {
	Kind string `gorm:"size:16;not null;default:'customer';index"`
}

func (v8Account) TableName() string { return "accounts" }

type v8Login struct {
	AccountID   string `gorm:"size:36;not null;index:idx_logins_account_created,priority:1"`
	InvitedAt   *time.Time
	LastLoginAt *time.Time
	CreatedAt   time.Time `gorm:"index:idx_logins_account_created,priority:2"`
}

func (v8Login) TableName() string { return "logins" }

type v8LoginToken struct {
	ID        string    `gorm:"primaryKey;size:36"`
	LoginID   string    `gorm:"size:36;not null;index:idx_login_tokens_login_purpose,priority:1"`
	Purpose   string    `gorm:"size:24;not null;index:idx_login_tokens_login_purpose,priority:2"`
	TokenHash string    `gorm:"size:64;not null;uniqueIndex"`
	ExpiresAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

func (v8LoginToken) TableName() string { return "login_tokens" }

type v8AuditEntry struct {
	AccountID  string `gorm:"size:36;not null;index:idx_audit_account_target,priority:1;index:idx_audit_account_actor,priority:1;index:idx_audit_account_action,priority:1"`
	ActorID    string `gorm:"size:36;not null;default:'';index:idx_audit_account_actor,priority:2"`
	Action     string `gorm:"size:64;not null;index:idx_audit_account_action,priority:2"`
	TargetType string `gorm:"size:32;not null;default:'';index:idx_audit_account_target,priority:2"`
	TargetID   string `gorm:"size:36;not null;default:'';index:idx_audit_account_target,priority:3"`
	TargetName string `gorm:"size:254;not null;default:''"`
	Before     string `gorm:"type:text"`
	After      string `gorm:"type:text"`
	RequestID  string `gorm:"size:64;not null;default:''"`
	Detail     string `gorm:"type:text"`
}

func (v8AuditEntry) TableName() string { return "audit_entries" }

var (
	v8AuditColumns = []string{"TargetName", "Before", "After", "RequestID"}
	v8AuditIndexes = []string{"idx_audit_account_target", "idx_audit_account_actor", "idx_audit_account_action"}
)

func v8People() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202612020008_people",
		Migrate: func(tx *gorm.DB) error {
			m := tx.Migrator()
			if err := m.AddColumn(&v8Account{}, "Kind"); err != nil {
				return err
			}
			if err := m.CreateIndex(&v8Account{}, "Kind"); err != nil {
				return err
			}
			for _, col := range []string{"InvitedAt", "LastLoginAt"} {
				if err := m.AddColumn(&v8Login{}, col); err != nil {
					return err
				}
			}
			if err := m.CreateIndex(&v8Login{}, "idx_logins_account_created"); err != nil {
				return err
			}
			if err := m.CreateTable(&v8LoginToken{}); err != nil {
				return err
			}
			for _, col := range v8AuditColumns {
				if err := m.AddColumn(&v8AuditEntry{}, col); err != nil {
					return err
				}
			}
			// What older entries recorded as their detail is the state
			// after the change.
			if err := tx.Exec("UPDATE audit_entries SET " + quoteColumn(tx, "after") + " = detail").Error; err != nil {
				return err
			}
			if err := dropColumn(tx, "audit_entries", "detail"); err != nil {
				return err
			}
			for _, idx := range v8AuditIndexes {
				if err := m.CreateIndex(&v8AuditEntry{}, idx); err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			m := tx.Migrator()
			for _, idx := range v8AuditIndexes {
				if err := m.DropIndex(&v8AuditEntry{}, idx); err != nil {
					return err
				}
			}
			if err := m.AddColumn(&v8AuditEntry{}, "Detail"); err != nil {
				return err
			}
			if err := tx.Exec("UPDATE audit_entries SET detail = " + quoteColumn(tx, "after")).Error; err != nil {
				return err
			}
			for _, col := range []string{"target_name", "before", "after", "request_id"} {
				if err := dropColumn(tx, "audit_entries", col); err != nil {
					return err
				}
			}
			if err := m.DropTable(&v8LoginToken{}); err != nil {
				return err
			}
			if err := m.DropIndex(&v8Login{}, "idx_logins_account_created"); err != nil {
				return err
			}
			for _, col := range []string{"invited_at", "last_login_at"} {
				if err := dropColumn(tx, "logins", col); err != nil {
					return err
				}
			}
			if err := m.DropIndex(&v8Account{}, "Kind"); err != nil {
				return err
			}
			return dropColumn(tx, "accounts", "kind")
		},
	}
}

// quoteColumn quotes a column name that is a reserved word in SQL.
func quoteColumn(tx *gorm.DB, name string) string {
	if tx.Dialector.Name() == "mysql" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}
