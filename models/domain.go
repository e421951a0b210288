package models

// Role is what a login may do within its account.
type Role string

// Roles, from most to least privileged. Support is read-only staff.
const (
	RoleOwner   Role = "owner"
	RoleAdmin   Role = "admin"
	RoleMember  Role = "member"
	RoleSupport Role = "support"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleMember, RoleSupport:
		return true
	}
	return false
}

// CanAdminister reports whether r may change settings, create locations and
// manage credentials.
func (r Role) CanAdminister() bool { return r == RoleOwner || r == RoleAdmin }

// CanOperate reports whether r may start syncs and other actions that do
// not change configuration. Support staff only watch.
func (r Role) CanOperate() bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// LoginState is what the apps show of a login.
type LoginState string

// Login states.
const (
	LoginInvited     LoginState = "invited"
	LoginActive      LoginState = "active"
	LoginDeactivated LoginState = "deactivated"
)

// AccountKind tells a customer's account from the operator's staff account.
type AccountKind string

// Account kinds.
const (
	AccountCustomer AccountKind = "customer"
	AccountStaff    AccountKind = "staff"
)

// TokenPurpose is what a mailed single-use token is for.
type TokenPurpose string

// Token purposes.
const (
	TokenInvitation    TokenPurpose = "invitation"
	TokenPasswordReset TokenPurpose = "password_reset"
)

// PanelConnection is the state of a panel's live link as the apps show it.
type PanelConnection string

// Panel connection states.
const (
	PanelConnected            PanelConnection = "connected"
	PanelDisconnected         PanelConnection = "disconnected"
	PanelAuthorizationExpired PanelConnection = "authorization_expired"
)

// SyncStatus summarises a location's sync health.
type SyncStatus string

// Sync statuses.
const (
	SyncOK      SyncStatus = "ok"
	SyncSyncing SyncStatus = "syncing"
	SyncFailure SyncStatus = "sync_failure"
	SyncNever   SyncStatus = "never"
	// SyncHeld: a users run awaits a person's Apply.
	SyncHeld SyncStatus = "held"
)

// RunKind is what a run synchronises.
type RunKind string

// Run kinds.
const (
	RunUsers   RunKind = "users"
	RunPanel   RunKind = "panel"
	RunRefresh RunKind = "refresh"
	RunImport  RunKind = "import"
)

// RunMode says whether a run re-checks every record or only the changes.
type RunMode string

// Run modes.
const (
	ModeIncremental RunMode = "incremental"
	ModeFull        RunMode = "full"
)

// RunTrigger says who or what started a run.
type RunTrigger string

// Run triggers.
const (
	TriggerApp      RunTrigger = "app"
	TriggerSchedule RunTrigger = "schedule"
	TriggerCheckin  RunTrigger = "checkin"
	TriggerAPI      RunTrigger = "api"
	TriggerReapply  RunTrigger = "reapply"
)

// RunState is where a run is in its life.
type RunState string

// Run states. Queued and running are active; the rest are final except
// awaiting_apply, which waits for a person.
const (
	RunQueued        RunState = "queued"
	RunRunning       RunState = "running"
	RunAwaitingApply RunState = "awaiting_apply"
	RunSucceeded     RunState = "succeeded"
	RunFailed        RunState = "failed"
	RunCancelled     RunState = "cancelled"
)

// Severity grades an Event Log entry.
type Severity string

// Severities.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)
