package migrations

import "time"

// These structs are the schema as migration 202611210001 created it. They
// are frozen copies: the models package moves on, a migration never does.

type v1Account struct {
	ID              string `gorm:"primaryKey;size:36"`
	Name            string `gorm:"size:200;not null"`
	LastEventOffset int64  `gorm:"not null;default:0"`
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

type v1Login struct {
	ID           string `gorm:"primaryKey;size:36"`
	AccountID    string `gorm:"size:36;not null;index"`
	Email        string `gorm:"size:254;not null;uniqueIndex"`
	Name         string `gorm:"size:200;not null"`
	Role         string `gorm:"size:16;not null"`
	PasswordHash string `gorm:"size:100;not null"`
	DisabledAt   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

type v1Session struct {
	ID           string `gorm:"primaryKey;size:36"`
	LoginID      string `gorm:"size:36;not null;index"`
	CreatedAt    time.Time
	LastUsedAt   time.Time
	ExpiresAt    time.Time
	RevokedAt    *time.Time
	RevokeReason string `gorm:"size:32;not null;default:''"`
}

type v1RefreshToken struct {
	ID        string `gorm:"primaryKey;size:36"`
	SessionID string `gorm:"size:36;not null;index"`
	TokenHash string `gorm:"size:64;not null;uniqueIndex"`
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

type v1Location struct {
	ID                     string `gorm:"primaryKey;size:36"`
	AccountID              string `gorm:"size:36;not null;index:idx_locations_account_name,priority:1;index:idx_locations_account_group,priority:1"`
	Name                   string `gorm:"size:200;not null;index:idx_locations_account_name,priority:2"`
	GroupName              string `gorm:"size:100;not null;default:'';index:idx_locations_account_group,priority:2"`
	SyncIntervalMinutes    int    `gorm:"not null"`
	AutoApply              bool   `gorm:"not null"`
	ForceUpdateAll         bool   `gorm:"not null"`
	SafetyThresholdPercent int    `gorm:"not null"`
	ReportEmails           string `gorm:"type:text;not null"`
	ForcePending           bool   `gorm:"not null;default:false"`
	SyncStatus             string `gorm:"size:16;not null"`
	UsersSyncedAt          *time.Time
	PanelSyncedAt          *time.Time
	RefreshedAt            *time.Time
	NextScheduledAt        *time.Time `gorm:"index"`
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

type v1Panel struct {
	ID                  string `gorm:"primaryKey;size:36"`
	AccountID           string `gorm:"size:36;not null;index"`
	LocationID          string `gorm:"size:36;not null;uniqueIndex"`
	Serial              string `gorm:"size:64;not null;uniqueIndex"`
	SecretHash          string `gorm:"size:64;not null"`
	CredentialExpiresAt *time.Time
	CredentialRevokedAt *time.Time
	Connection          string `gorm:"size:24;not null"`
	LastSeenAt          *time.Time
	ArmedState          string `gorm:"size:24;not null;default:'unknown'"`
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

type v1PanelUser struct {
	ID             string  `gorm:"primaryKey;size:36"`
	LocationID     string  `gorm:"size:36;not null;uniqueIndex:idx_panel_users_location_number,priority:1"`
	UserNumber     int     `gorm:"not null;uniqueIndex:idx_panel_users_location_number,priority:2"`
	Name           string  `gorm:"size:200;not null"`
	Email          string  `gorm:"size:254;not null;default:'';index"`
	Authority      string  `gorm:"size:24;not null"`
	Partitions     string  `gorm:"size:200;not null;default:''"`
	AccessSchedule string  `gorm:"size:200;not null;default:''"`
	HasCode        bool    `gorm:"not null"`
	CodeDigest     string  `gorm:"size:64;not null;default:''"`
	LoginID        *string `gorm:"size:36;index"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

type v1Run struct {
	ID             string    `gorm:"primaryKey;size:36"`
	AccountID      string    `gorm:"size:36;not null;index:idx_runs_account_created,priority:1"`
	LocationID     string    `gorm:"size:36;not null;index:idx_runs_location_created,priority:1"`
	BatchID        *string   `gorm:"size:36;index"`
	Kind           string    `gorm:"size:16;not null"`
	Mode           string    `gorm:"size:16;not null"`
	TriggerSource  string    `gorm:"size:16;not null"`
	State          string    `gorm:"size:16;not null;index:idx_runs_state_available,priority:1"`
	ActiveKey      *string   `gorm:"size:64;uniqueIndex"`
	RequestedBy    string    `gorm:"size:200;not null;default:''"`
	Attempt        int       `gorm:"not null;default:0"`
	AvailableAt    time.Time `gorm:"index:idx_runs_state_available,priority:2"`
	LeaseOwner     string    `gorm:"size:64;not null;default:''"`
	LeaseExpiresAt *time.Time
	Added          int       `gorm:"not null;default:0"`
	Updated        int       `gorm:"not null;default:0"`
	Removed        int       `gorm:"not null;default:0"`
	Unchanged      int       `gorm:"not null;default:0"`
	ErrorCode      string    `gorm:"size:64;not null;default:''"`
	ErrorMessage   string    `gorm:"size:500;not null;default:''"`
	Data           []byte    `gorm:"type:longblob"`
	Changes        []byte    `gorm:"type:longblob"`
	CreatedAt      time.Time `gorm:"index:idx_runs_account_created,priority:2;index:idx_runs_location_created,priority:2"`
	StartedAt      *time.Time
	FinishedAt     *time.Time
	UpdatedAt      time.Time
}

type v1Event struct {
	ID         string  `gorm:"primaryKey;size:36"`
	AccountID  string  `gorm:"size:36;not null;uniqueIndex:idx_events_account_offset,priority:1;index:idx_events_account_location,priority:1"`
	Offset     int64   `gorm:"column:log_offset;not null;uniqueIndex:idx_events_account_offset,priority:2;index:idx_events_account_location,priority:3"`
	LocationID *string `gorm:"size:36;index:idx_events_account_location,priority:2"`
	RunID      *string `gorm:"size:36;index"`
	Type       string  `gorm:"size:64;not null"`
	Severity   string  `gorm:"size:16;not null"`
	Message    string  `gorm:"size:500;not null"`
	Data       string  `gorm:"type:text"`
	OccurredAt time.Time
}

type v1AuditEntry struct {
	ID         string    `gorm:"primaryKey;size:36"`
	AccountID  string    `gorm:"size:36;not null;index:idx_audit_account_created,priority:1"`
	ActorKind  string    `gorm:"size:16;not null"`
	ActorID    string    `gorm:"size:36;not null;default:''"`
	ActorName  string    `gorm:"size:254;not null;default:''"`
	Action     string    `gorm:"size:64;not null"`
	TargetType string    `gorm:"size:32;not null;default:''"`
	TargetID   string    `gorm:"size:36;not null;default:''"`
	Detail     string    `gorm:"type:text"`
	ClientIP   string    `gorm:"size:64;not null;default:''"`
	CreatedAt  time.Time `gorm:"index:idx_audit_account_created,priority:2"`
}

type v1APIKey struct {
	ID         string `gorm:"primaryKey;size:36"`
	AccountID  string `gorm:"size:36;not null;index"`
	Name       string `gorm:"size:200;not null"`
	Prefix     string `gorm:"size:16;not null;uniqueIndex"`
	SecretHash string `gorm:"size:64;not null"`
	Scopes     string `gorm:"size:500;not null"`
	CreatedBy  string `gorm:"size:36;not null"`
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
}

func (v1Account) TableName() string      { return "accounts" }
func (v1Login) TableName() string        { return "logins" }
func (v1Session) TableName() string      { return "sessions" }
func (v1RefreshToken) TableName() string { return "refresh_tokens" }
func (v1Location) TableName() string     { return "locations" }
func (v1Panel) TableName() string        { return "panels" }
func (v1PanelUser) TableName() string    { return "panel_users" }
func (v1Run) TableName() string          { return "runs" }
func (v1Event) TableName() string        { return "events" }
func (v1AuditEntry) TableName() string   { return "audit_entries" }
func (v1APIKey) TableName() string       { return "api_keys" }
