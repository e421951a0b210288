package models

import "time"

// The structs below are the storage rows. They carry no json tags on
// purpose: handlers convert them into response types, so a column added
// here never leaks to a client by accident.

// Account owns logins and locations; LastEventOffset is the Event Log
// counter, bumped inside each transaction that writes events so offsets
// follow commit order.
type Account struct {
	ID              string `gorm:"primaryKey;size:36"`
	Name            string `gorm:"size:200;not null"`
	LastEventOffset int64  `gorm:"not null;default:0"`
	// Kind is "customer" for an organisation that owns locations, or
	// "staff" for the operator's own support staff, who see customer
	// accounts only through staff grants.
	Kind      AccountKind `gorm:"size:16;not null;default:'customer';index"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Login is a person who signs in to the apps. A login is never deleted,
// so the audit log can always name who did what: an invited login has no
// password until its invitation is accepted, and a deactivated one has
// DisabledAt set.
type Login struct {
	ID           string `gorm:"primaryKey;size:36"`
	AccountID    string `gorm:"size:36;not null;index:idx_logins_account_created,priority:1"`
	Email        string `gorm:"size:254;not null;uniqueIndex"`
	Name         string `gorm:"size:200;not null"`
	Role         Role   `gorm:"size:16;not null"`
	PasswordHash string `gorm:"size:100;not null"`
	DisabledAt   *time.Time
	InvitedAt    *time.Time
	LastLoginAt  *time.Time
	CreatedAt    time.Time `gorm:"index:idx_logins_account_created,priority:2"`
	UpdatedAt    time.Time
}

// State is what the apps show of a login: invited until it has a
// password, deactivated while disabled, active otherwise.
func (l Login) State() LoginState {
	switch {
	case l.DisabledAt != nil:
		return LoginDeactivated
	case l.PasswordHash == "":
		return LoginInvited
	}
	return LoginActive
}

// LoginToken is a single-use token mailed to a person: an invitation or a
// password reset. Only the SHA-256 of the token is kept.
type LoginToken struct {
	ID        string       `gorm:"primaryKey;size:36"`
	LoginID   string       `gorm:"size:36;not null;index:idx_login_tokens_login_purpose,priority:1"`
	Purpose   TokenPurpose `gorm:"size:24;not null;index:idx_login_tokens_login_purpose,priority:2"`
	TokenHash string       `gorm:"size:64;not null;uniqueIndex"`
	ExpiresAt time.Time    `gorm:"not null"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

// Session is one signed-in device: the family of refresh tokens that
// descend from one login. Revoking it ends every token of the family,
// access tokens included (they carry the session id).
type Session struct {
	ID           string `gorm:"primaryKey;size:36"`
	LoginID      string `gorm:"size:36;not null;index"`
	CreatedAt    time.Time
	LastUsedAt   time.Time
	ExpiresAt    time.Time
	RevokedAt    *time.Time
	RevokeReason string `gorm:"size:32;not null;default:''"`
}

// RefreshToken is one link of a session's rotation chain. Only the SHA-256
// of the token is kept; the token itself is shown once.
type RefreshToken struct {
	ID        string `gorm:"primaryKey;size:36"`
	SessionID string `gorm:"size:36;not null;index"`
	TokenHash string `gorm:"size:64;not null;uniqueIndex"`
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Location is one site of an account, with its sync settings and the
// remote copy's sync summary.
type Location struct {
	ID                     string     `gorm:"primaryKey;size:36"`
	AccountID              string     `gorm:"size:36;not null;index:idx_locations_account_name,priority:1;index:idx_locations_account_group,priority:1"`
	Name                   string     `gorm:"size:200;not null;index:idx_locations_account_name,priority:2"`
	GroupName              string     `gorm:"size:100;not null;default:'';index:idx_locations_account_group,priority:2"`
	SyncIntervalMinutes    int        `gorm:"not null"`
	AutoApply              bool       `gorm:"not null"`
	ForceUpdateAll         bool       `gorm:"not null"`
	SafetyThresholdPercent int        `gorm:"not null"`
	SafetyThresholdCount   int        `gorm:"not null;default:0"`
	ReportEmails           string     `gorm:"type:text;not null"`
	ForcePending           bool       `gorm:"not null;default:false;index:idx_locations_force_pending"`
	SyncStatus             SyncStatus `gorm:"size:16;not null"`
	UsersSyncedAt          *time.Time
	PanelSyncedAt          *time.Time
	RefreshedAt            *time.Time
	NextScheduledAt        *time.Time `gorm:"index"`
	// UsersChangeDueAt is when an incremental users sync is due because
	// users were changed at the panel's keypad: a short delay after the
	// last change reported, so that a burst of edits gives one run. It is
	// NULL when no change is waiting for a sync.
	UsersChangeDueAt *time.Time `gorm:"index"`
	// WorkerRank is the rank of the nodes that run the location's syncs;
	// 0 is served by every node.
	WorkerRank int `gorm:"not null;default:0"`
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Panel is the alarm system at a location and the state of its live link.
// SecretHash is the SHA-256 of the device secret, which is shown once.
type Panel struct {
	ID                  string `gorm:"primaryKey;size:36"`
	AccountID           string `gorm:"size:36;not null;index"`
	LocationID          string `gorm:"size:36;not null;uniqueIndex"`
	Serial              string `gorm:"size:64;not null;uniqueIndex"`
	SecretHash          string `gorm:"size:64;not null"`
	CredentialExpiresAt *time.Time
	CredentialRevokedAt *time.Time
	Connection          PanelConnection `gorm:"size:24;not null;index:idx_panels_connection_node,priority:1"`
	LastSeenAt          *time.Time
	ArmedState          string `gorm:"size:24;not null;default:'unknown'"`
	// LinkID names the live connection that last connected; a connection
	// that closes only marks the panel disconnected if it is still the
	// current one, so a replaced connection cannot undo its successor.
	LinkID         string `gorm:"size:36;not null;default:''"`
	NodeID         string `gorm:"size:64;not null;default:'';index:idx_panels_connection_node,priority:2"`
	ConnectedAt    *time.Time
	StatusJSON     string `gorm:"type:text"`
	UsersWatermark string `gorm:"size:64;not null;default:''"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Node is a serving node's heartbeat. A node whose heartbeat stops has
// lost its panel links, whatever the panels table still says.
type Node struct {
	ID          string    `gorm:"primaryKey;size:64"`
	StartedAt   time.Time `gorm:"not null"`
	HeartbeatAt time.Time `gorm:"not null;index"`
	// Ranks lists the ranks the node serves besides 0, comma-separated.
	Ranks string `gorm:"size:255;not null;default:''"`
}

// StrandedRank records that an account's runs of a rank wait with no
// running node to serve it, from Since until a node serves it again or no
// run of it waits: the warning is written when the row is added, once.
type StrandedRank struct {
	AccountID  string    `gorm:"primaryKey;size:36"`
	WorkerRank int       `gorm:"primaryKey;autoIncrement:false"`
	Since      time.Time `gorm:"not null"`
}

// PanelConfigItem is the remote copy of one partition, zone or device of a
// panel's configuration.
type PanelConfigItem struct {
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

// PanelUser is the remote copy of one user code slot on a panel. The code
// itself is never stored; CodeDigest is a keyed digest that tells whether it
// changed.
type PanelUser struct {
	ID         string `gorm:"primaryKey;size:36"`
	LocationID string `gorm:"size:36;not null;uniqueIndex:idx_panel_users_location_number,priority:1;index:idx_panel_users_location_external,priority:1"`
	UserNumber int    `gorm:"not null;uniqueIndex:idx_panel_users_location_number,priority:2"`
	Name       string `gorm:"size:200;not null"`
	Email      string `gorm:"size:254;not null;default:'';index"`
	// ExternalID is the person's id in the customer's own systems, which
	// imports bring; empty until one does.
	ExternalID     string  `gorm:"size:64;not null;default:'';index:idx_panel_users_location_external,priority:2"`
	Authority      string  `gorm:"size:24;not null"`
	Partitions     string  `gorm:"size:200;not null;default:''"`
	AccessSchedule string  `gorm:"size:200;not null;default:''"`
	HasCode        bool    `gorm:"not null"`
	CodeDigest     string  `gorm:"size:64;not null;default:''"`
	LoginID        *string `gorm:"size:36;index"`
	// ReceivedAt and ReceivedRunID say when the record last took this
	// user from a users run, and which run, whether or not the run
	// changed it. Both are nil until a run receives the user, as on rows
	// written before the columns existed.
	ReceivedAt    *time.Time
	ReceivedRunID *string `gorm:"size:36"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Run is one sync of one kind for one location. The run table is also the
// work queue: ActiveKey is "location:kind" while the run is queued or
// running and NULL afterwards, so a unique index allows one active run per
// location and kind.
type Run struct {
	ID             string     `gorm:"primaryKey;size:36"`
	AccountID      string     `gorm:"size:36;not null;index:idx_runs_account_created,priority:1"`
	LocationID     string     `gorm:"size:36;not null;index:idx_runs_location_created,priority:1;index:idx_runs_location_state_finished,priority:1"`
	BatchID        *string    `gorm:"size:36;index"`
	Kind           RunKind    `gorm:"size:16;not null"`
	Mode           RunMode    `gorm:"size:16;not null"`
	TriggerSource  RunTrigger `gorm:"size:16;not null"`
	State          RunState   `gorm:"size:16;not null;index:idx_runs_state_available,priority:1;index:idx_runs_state_rank_available,priority:1;index:idx_runs_location_state_finished,priority:2"`
	ActiveKey      *string    `gorm:"size:64;uniqueIndex"`
	RequestedBy    string     `gorm:"size:200;not null;default:''"`
	Attempt        int        `gorm:"not null;default:0"`
	AvailableAt    time.Time  `gorm:"index:idx_runs_state_available,priority:2;index:idx_runs_state_rank_available,priority:3"`
	LeaseOwner     string     `gorm:"size:64;not null;default:''"`
	LeaseExpiresAt *time.Time
	Added          int    `gorm:"not null;default:0"`
	Updated        int    `gorm:"not null;default:0"`
	Removed        int    `gorm:"not null;default:0"`
	Unchanged      int    `gorm:"not null;default:0"`
	ErrorCode      string `gorm:"size:64;not null;default:''"`
	ErrorMessage   string `gorm:"size:500;not null;default:''"`
	Data           []byte `gorm:"type:longblob"`
	Changes        []byte `gorm:"type:longblob"`
	// Pending is what a held run needs to be applied later and is never
	// shown: the keyed digests of the codes the panel sent. It is wiped
	// when the run is applied or cancelled.
	Pending []byte `gorm:"type:longblob"`
	// ImportID names the upload an import run came from; nil for every
	// other run, re-applies included.
	ImportID *string `gorm:"size:36;index"`
	// ReappliedFrom names the run a re-apply brings the panel back to.
	ReappliedFrom *string `gorm:"size:36"`
	// Codes are the user codes an import or re-apply pushes, sealed
	// (decision 13): opened only to send them to the panel, kept so that
	// a re-apply restores them, wiped when the run is cancelled.
	Codes []byte `gorm:"type:longblob"`
	// ApprovedBy is who let the run push to its panel without the safety
	// hold: the person who applied it, or who asked for a re-apply.
	ApprovedBy string `gorm:"size:254;not null;default:''"`
	// Takeovers counts the times a node took the run over after the node
	// running it stopped answering. Such a takeover starts the attempt
	// again under its number, as a run handed back by a stopping node
	// does, since neither is the panel's failure; the count bounds a run
	// that kills every node that runs it.
	Takeovers int `gorm:"not null;default:0"`
	// WorkerRank is its location's rank, copied when the run is queued
	// and kept equal while the run is open (SetLocationRanks), so that a
	// claim filters on the runs table alone.
	WorkerRank int       `gorm:"not null;default:0;index:idx_runs_state_rank_available,priority:2"`
	CreatedAt  time.Time `gorm:"index:idx_runs_account_created,priority:2;index:idx_runs_location_created,priority:2"`
	StartedAt  *time.Time
	FinishedAt *time.Time `gorm:"index:idx_runs_location_state_finished,priority:3"`
	UpdatedAt  time.Time
}

// Event is one Event Log entry. Offset grows by one per event within an
// account, in commit order.
type Event struct {
	ID         string  `gorm:"primaryKey;size:36"`
	AccountID  string  `gorm:"size:36;not null;uniqueIndex:idx_events_account_offset,priority:1;index:idx_events_account_location,priority:1"`
	Offset     int64   `gorm:"column:log_offset;not null;uniqueIndex:idx_events_account_offset,priority:2;index:idx_events_account_location,priority:3"`
	LocationID *string `gorm:"size:36;index:idx_events_account_location,priority:2"`
	// LocationName is the location's name when the entry was written, so
	// that a log reads by name without a lookup per entry; a later rename
	// leaves it as it was.
	LocationName *string  `gorm:"size:200"`
	RunID        *string  `gorm:"size:36;index"`
	Type         string   `gorm:"size:64;not null"`
	Severity     Severity `gorm:"size:16;not null"`
	Message      string   `gorm:"size:500;not null"`
	Data         string   `gorm:"type:text"`
	OccurredAt   time.Time
}

// AuditEntry records one change a person, a key or the service made: who,
// what, the values before and after, and the request that made it. No
// route changes or deletes one.
type AuditEntry struct {
	ID         string    `gorm:"primaryKey;size:36"`
	AccountID  string    `gorm:"size:36;not null;index:idx_audit_account_created,priority:1;index:idx_audit_account_target,priority:1;index:idx_audit_account_actor,priority:1;index:idx_audit_account_action,priority:1"`
	ActorKind  string    `gorm:"size:16;not null"`
	ActorID    string    `gorm:"size:36;not null;default:'';index:idx_audit_account_actor,priority:2"`
	ActorName  string    `gorm:"size:254;not null;default:''"`
	Action     string    `gorm:"size:64;not null;index:idx_audit_account_action,priority:2"`
	TargetType string    `gorm:"size:32;not null;default:'';index:idx_audit_account_target,priority:2"`
	TargetID   string    `gorm:"size:36;not null;default:'';index:idx_audit_account_target,priority:3"`
	TargetName string    `gorm:"size:254;not null;default:''"`
	Before     string    `gorm:"type:text"`
	After      string    `gorm:"type:text"`
	RequestID  string    `gorm:"size:64;not null;default:''"`
	ClientIP   string    `gorm:"size:64;not null;default:''"`
	CreatedAt  time.Time `gorm:"index:idx_audit_account_created,priority:2"`
}

// APIKey lets an integrator's scripts act on an account within its scopes.
// Prefix identifies the key in lists and logs; only the SHA-256 of the
// secret part is kept.
type APIKey struct {
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

// RealtimeTicket lets a browser open the realtime WebSocket once, shortly
// after an authenticated request asked for it. Only its SHA-256 is kept.
type RealtimeTicket struct {
	ID              string `gorm:"primaryKey;size:36"`
	TokenHash       string `gorm:"size:64;not null;uniqueIndex"`
	LoginID         string `gorm:"size:36;not null"`
	SessionID       string `gorm:"size:36;not null"`
	AccessExpiresAt time.Time
	ExpiresAt       time.Time `gorm:"index"`
	UsedAt          *time.Time
	CreatedAt       time.Time
}

// StaffGrant lets a support login watch an account other than its own,
// read-only, until it is revoked or expires.
type StaffGrant struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID string `gorm:"size:36;not null;uniqueIndex:idx_staff_grants_account_login,priority:1"`
	LoginID   string `gorm:"size:36;not null;uniqueIndex:idx_staff_grants_account_login,priority:2;index"`
	GrantedBy string `gorm:"size:36;not null"`
	ExpiresAt *time.Time
	CreatedAt time.Time
}

// Batch is one All-Locations (or group, or list) request: one run per
// location, created in chunks after the request is answered.
type Batch struct {
	ID          string  `gorm:"primaryKey;size:36"`
	AccountID   string  `gorm:"size:36;not null;index:idx_batches_account_created,priority:1"`
	Kind        RunKind `gorm:"size:16;not null"`
	Scope       string  `gorm:"size:16;not null"`
	GroupName   string  `gorm:"size:100;not null;default:''"`
	LocationIDs string  `gorm:"type:text"`
	RequestedBy string  `gorm:"size:254;not null;default:''"`
	// TriggerSource is the trigger every run of the batch gets.
	TriggerSource RunTrigger `gorm:"size:16;not null;default:'app'"`
	Total         int        `gorm:"not null"`
	Skipped       int        `gorm:"not null;default:0"`
	ExpandCursor  string     `gorm:"size:36;not null;default:''"`
	Expanded      bool       `gorm:"not null;default:false;index:idx_batches_expand,priority:1"`
	ExpandOwner   string     `gorm:"size:64;not null;default:''"`
	ExpandLease   *time.Time `gorm:"index:idx_batches_expand,priority:2"`
	State         string     `gorm:"size:16;not null"`
	CancelledAt   *time.Time
	FinishedAt    *time.Time
	ProgressAt    *time.Time
	// HeldReportedAt is when the batch's report e-mails were told that
	// every run it has left waits for a person's Apply.
	HeldReportedAt *time.Time
	CreatedAt      time.Time `gorm:"index:idx_batches_account_created,priority:2"`
	UpdatedAt      time.Time
}

// Import is one upload of a user list: the data file as received with its
// codes masked, and the control file, kept for every run it started.
type Import struct {
	ID          string `gorm:"primaryKey;size:36"`
	AccountID   string `gorm:"size:36;not null;index"`
	BatchID     string `gorm:"size:36;not null;index"`
	RequestedBy string `gorm:"size:254;not null;default:''"`
	// Format is "csv" or "json".
	Format   string `gorm:"size:8;not null"`
	FileName string `gorm:"size:255;not null;default:''"`
	Rows     int    `gorm:"not null"`
	// Data is the data file with every code replaced by a mask.
	Data []byte `gorm:"type:longblob"`
	// Control is the control file as uploaded, or nil without one.
	Control   []byte `gorm:"type:longblob"`
	CreatedAt time.Time
}

// Link says that a panel user at a location is a login's person. A draft
// changes nothing until it is saved. The options say what pushes keep in
// sync for the person, and where the person is propagated.
type Link struct {
	ID         string `gorm:"primaryKey;size:36"`
	AccountID  string `gorm:"size:36;not null;index:idx_links_account_state,priority:1"`
	LoginID    string `gorm:"size:36;not null;uniqueIndex:idx_links_login_location,priority:1"`
	LocationID string `gorm:"size:36;not null;uniqueIndex:idx_links_login_location,priority:2;uniqueIndex:idx_links_location_number,priority:1"`
	UserNumber int    `gorm:"not null;uniqueIndex:idx_links_location_number,priority:2"`
	// State is LinkDraft or LinkSaved.
	State string `gorm:"size:16;not null;index:idx_links_account_state,priority:2"`
	// SyncCode, SyncSchedule and SyncPartitions say whether pushes write
	// the person's code, access schedule and partitions; a field left out
	// keeps what the panel has.
	SyncCode       bool `gorm:"not null;default:true"`
	SyncSchedule   bool `gorm:"not null;default:true"`
	SyncPartitions bool `gorm:"not null;default:true"`
	// Propagate is PropagateNone, PropagateGroup or PropagateAll.
	Propagate string `gorm:"size:8;not null;default:'none'"`
	CreatedBy string `gorm:"size:254;not null;default:''"`
	SavedAt   *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}
