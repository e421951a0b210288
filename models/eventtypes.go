package models

// Event Log entry types. Every producer names its events with these, so
// the list of what the log can hold is here and nowhere else.
const (
	EventSyncRequested = "sync.requested"
	EventSyncSucceeded = "sync.succeeded"
	EventSyncFailed    = "sync.failed"
	// EventSyncRetrying says that a run's attempt failed and when the
	// next one comes.
	EventSyncRetrying       = "sync.retrying"
	EventSyncHeld           = "sync.held"
	EventSyncCancelled      = "sync.cancelled"
	EventSyncForceRequested = "sync.force_requested"
	EventBatchProgress      = "batch.progress"
	EventBatchFinished      = "batch.finished"
	EventLinkSaved          = "link.saved"
	EventLinkRemoved        = "link.removed"
	// EventRunsStranded warns an account that its runs of a rank wait
	// because no running node serves that rank.
	EventRunsStranded = "runs.stranded"

	EventPanelConnected            = "panel.connected"
	EventPanelDisconnected         = "panel.disconnected"
	EventPanelAuthorizationExpired = "panel.authorization_expired"
	EventPanelCheckin              = "panel.checkin"
	EventPanelArmed                = "panel.armed"
	EventPanelDisarmed             = "panel.disarmed"
	EventPanelAlarm                = "panel.alarm"
	EventPanelTrouble              = "panel.trouble"
	EventPanelUserChanged          = "panel.user_changed"
)

// EventTypes lists every type the Event Log holds, for filters to check
// against.
func EventTypes() []string {
	return []string{
		EventSyncRequested, EventSyncSucceeded, EventSyncFailed, EventSyncRetrying, EventSyncHeld, EventSyncCancelled,
		EventSyncForceRequested, EventBatchProgress, EventBatchFinished, EventLinkSaved, EventLinkRemoved, EventRunsStranded,
		EventPanelConnected, EventPanelDisconnected, EventPanelAuthorizationExpired, EventPanelCheckin,
		EventPanelArmed, EventPanelDisarmed, EventPanelAlarm, EventPanelTrouble, EventPanelUserChanged,
	}
}
