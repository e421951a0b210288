package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// attemptOutcome is what one attempt produced: either an error, or the
// counts, the payloads to keep and the changes to apply.
type attemptOutcome struct {
	err  *runError
	mode models.RunMode
	// location is the run's location as the attempt found it, for the
	// report mailed with the outcome; empty when it could not be loaded.
	location models.Location
	// data is what the panel sent, as kept for the run's data download.
	data []byte
	// apply reconciles the remote copy with what the panel sent, inside
	// the transaction that finishes the run, so the diff is taken against
	// the copy as it stands at commit.
	apply func(ctx context.Context) (applied, error)
}

// applied is what reconciling changed.
type applied struct {
	counts  counts
	changes []byte
	// summary completes the success message, such as "2 added, 1 removed".
	summary string
	// hold, when set, says why the run waits for a person instead: nothing
	// was applied, and pending is what its apply will need.
	hold    string
	pending []byte
	// failed, when set, ends the run failed although its changes were
	// applied: the panel refused or did not keep some of the users pushed
	// to it, and the record holds what the panel confirmed.
	failed *runError
	// note completes the event's data, such as how many users need a new
	// code.
	note map[string]any
}

type counts struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Removed   int `json:"removed"`
	Unchanged int `json:"unchanged"`
}

func (c counts) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		verb string
	}{{c.Added, "added"}, {c.Updated, "updated"}, {c.Removed, "removed"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.verb))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

func failedOutcome(err *runError) attemptOutcome { return attemptOutcome{err: err} }

// runError is a failed attempt: a stable code for the Event Log and API,
// a human message, and whether retrying could help.
type runError struct {
	code      string
	message   string
	permanent bool
	// uncounted marks a failure that is neither the panel's nor the
	// run's (the bus between the servers down): it is retried without
	// using up one of the run's attempts.
	uncounted bool
}

func (e *runError) Error() string { return e.code + ": " + e.message }

// classify turns an executor error into a runError.
func classify(err error) *runError {
	var re *runError
	if errors.As(err, &re) {
		return re
	}
	if f, ok := panel.AsCommandFailure(err); ok {
		return &runError{code: f.Code, message: failureMessage(f), permanent: !f.Transient(), uncounted: f.Code == panel.FailBusUnavailable}
	}
	if errors.Is(err, context.Canceled) {
		return &runError{code: "cancelled", message: "the run was cancelled", permanent: true}
	}
	return errInternal(false)
}

// errInternal is a failure inside the server, in words a customer reads.
func errInternal(permanent bool) *runError {
	return &runError{code: "internal", message: "the sync failed on an internal error", permanent: permanent}
}

func failureMessage(f *panel.CommandFailure) string {
	switch f.Code {
	case panel.FailTimeout:
		return "the panel did not answer in time"
	case panel.FailDisconnected:
		return "the panel is not connected"
	case panel.FailBusy:
		return "the panel is busy with other commands"
	}
	return f.Message
}

// runAttempt loads what the run acts on and hands it to its kind's
// executor.
func (e *Engine) runAttempt(ctx context.Context, r models.Run) attemptOutcome {
	loc, err := e.store.LocationByID(ctx, r.LocationID)
	if err != nil {
		return failedOutcome(classify(err))
	}
	var out attemptOutcome
	switch r.Kind {
	case models.RunUsers:
		out, err = e.syncUsers(ctx, r, loc)
	case models.RunPanel:
		out, err = e.syncPanel(ctx, r, loc)
	case models.RunRefresh:
		out, err = e.refresh(ctx, r, loc)
	case models.RunImport:
		out, err = e.importUsers(ctx, r, loc)
	default:
		err = &runError{code: "internal", message: fmt.Sprintf("runs of kind %s are not executed by workers", r.Kind), permanent: true}
	}
	if err != nil {
		out = failedOutcome(classify(err))
	}
	out.location = loc.Location
	return out
}

func kindLabel(k models.RunKind) string {
	switch k {
	case models.RunUsers:
		return "User sync"
	case models.RunPanel:
		return "Panel sync"
	case models.RunRefresh:
		return "Refresh"
	case models.RunImport:
		return "User import"
	}
	return string(k)
}

// runLabel names a run in messages: a re-apply by what it does, any other
// run by its kind.
func runLabel(k models.RunKind, trigger models.RunTrigger) string {
	if trigger == models.TriggerReapply {
		return "Re-apply"
	}
	return kindLabel(k)
}

// withNote adds a run's note to its event's data.
func withNote(data, note map[string]any) map[string]any {
	for k, v := range note {
		data[k] = v
	}
	return data
}

// InitiatedMessage is the answer to a sync request, as the apps show it.
func InitiatedMessage(k models.RunKind) string {
	switch k {
	case models.RunUsers:
		return "User sync process has been initiated"
	case models.RunPanel:
		return "Panel sync process has been initiated"
	case models.RunRefresh:
		return "Refresh process has been initiated"
	}
	return kindLabel(k) + " process has been initiated"
}
