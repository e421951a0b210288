package panel

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/panelsync/panelsync/bus"
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

// busReply is the answer to a command, from the panel's connection to
// whoever sent it, here or over the bus.
type busReply struct {
	OK    bool
	Data  json.RawMessage
	Error *CommandError
}

// toBusReply and fromBusReply carry a reply across the bus.
func toBusReply(r busReply) bus.Reply {
	out := bus.Reply{OK: r.OK, Data: r.Data}
	if r.Error != nil {
		out.Error = &bus.ReplyError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return out
}

func fromBusReply(r bus.Reply) busReply {
	out := busReply{OK: r.OK, Data: r.Data}
	if r.Error != nil {
		out.Error = &CommandError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return out
}

// busControl tells the node holding a panel to let go of it.
type busControl = bus.PanelControl
