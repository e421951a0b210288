package panel

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Failure codes of a command, as the sync engine and the Event Log name
// them.
const (
	FailDisconnected = "panel_disconnected"
	FailTimeout      = "panel_timeout"
	FailBusy         = "panel_busy"
	FailPanelError   = "panel_error"
	// FailBusUnavailable is a command that could not reach the node
	// holding the panel because the bus between nodes is down: the panel
	// may well be connected, so it is neither told disconnected nor
	// failed for good.
	FailBusUnavailable = "bus_unavailable"
)

// CommandFailure is why a command did not get an answer, or got a refusal.
type CommandFailure struct {
	Code    string
	Message string
}

func (f *CommandFailure) Error() string { return f.Code + ": " + f.Message }

// Transient reports whether trying again later may succeed: the panel was
// away or slow, or out of reach for a while, rather than refusing.
func (f *CommandFailure) Transient() bool {
	switch f.Code {
	case FailDisconnected, FailTimeout, FailBusy, FailBusUnavailable:
		return true
	}
	return false
}

// AsCommandFailure returns the CommandFailure in err's chain, if any.
func AsCommandFailure(err error) (*CommandFailure, bool) {
	var f *CommandFailure
	ok := errors.As(err, &f)
	return f, ok
}

func failure(code, format string, args ...any) *CommandFailure {
	return &CommandFailure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// busRequest is a command as it travels over the bus to the node that
// holds the panel's connection.
type busRequest struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
	// TimeoutMS is how long the holding node waits for the panel.
	TimeoutMS int64 `json:"timeout_ms"`
}

// busReply is the holding node's answer.
type busReply struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *CommandError   `json:"error,omitempty"`
}

// busControl tells the node holding a panel to let go of it: a newer
// connection took over elsewhere, or its credential was revoked.
type busControl struct {
	Op     string `json:"op"`
	LinkID string `json:"link_id,omitempty"`
	// ConnectedAt is when the connection that sent a takeover began. A
	// takeover only ends an older connection: the bus may deliver one
	// after a newer connection has already replaced its sender.
	ConnectedAt time.Time `json:"connected_at,omitzero"`
}

// Control operations.
const (
	ctlTakeover = "takeover"
	ctlKick     = "kick"
)

func commandSubject(panelID string) string { return "psync.panel." + panelID + ".cmd" }
func controlSubject(panelID string) string { return "psync.panel." + panelID + ".ctl" }
