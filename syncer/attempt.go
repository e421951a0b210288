package syncer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
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

// record writes an attempt's outcome: success applies the changes and
// finishes the run in one transaction guarded by the lease; a transient
// failure with attempts left goes back in the queue; anything else is a
// Sync Failure.
func (e *Engine) record(ctx context.Context, r models.Run, out attemptOutcome) error {
	now := e.now()
	if out.err == nil {
		return e.store.Tx(ctx, func(ctx context.Context) error {
			res, err := out.apply(ctx)
			if err != nil {
				return err
			}
			if hook := e.beforeSettle.Load(); hook != nil {
				(*hook)(r)
			}
			if res.hold != "" {
				return e.hold(ctx, r, out, res, now)
			}
			if res.failed != nil {
				// The panel took part of the push: the record holds what it
				// confirmed, and the run is a Sync Failure so that someone
				// looks at the users it lists as failed.
				return e.settle(ctx, r, out.location, models.RunOutcome{
					State: models.RunFailed, Mode: out.mode,
					Added: res.counts.Added, Updated: res.counts.Updated, Removed: res.counts.Removed, Unchanged: res.counts.Unchanged,
					ErrorCode: res.failed.code, ErrorMessage: res.failed.message, Data: out.data, Changes: res.changes,
				}, res.failed.message, res.failed.message+" Applied: "+res.summary+".",
					withNote(map[string]any{"kind": r.Kind, "code": res.failed.code, "attempt": r.Attempt, "changes": res.counts}, res.note), now)
			}
			return e.settle(ctx, r, out.location, models.RunOutcome{
				State: models.RunSucceeded, Mode: out.mode,
				Added: res.counts.Added, Updated: res.counts.Updated, Removed: res.counts.Removed, Unchanged: res.counts.Unchanged,
				Data: out.data, Changes: res.changes,
			}, res.summary, res.summary,
				withNote(map[string]any{"kind": r.Kind, "mode": out.mode, "changes": res.counts, "attempt": r.Attempt}, res.note), now)
		})
	}
	if !out.err.permanent && (out.err.uncounted || r.Attempt < e.cfg.MaxAttempts) {
		return e.retry(ctx, r, out.err, now)
	}
	return e.store.Tx(ctx, func(ctx context.Context) error {
		return e.settle(ctx, r, out.location, models.RunOutcome{
			State: models.RunFailed, ErrorCode: out.err.code, ErrorMessage: out.err.message, Data: out.data,
		}, out.err.message, out.err.message, map[string]any{"kind": r.Kind, "code": out.err.code, "attempt": r.Attempt}, now)
	})
}

// retry puts a run whose attempt failed transiently back in the queue
// for a later attempt, with one sync.retrying event that says what went
// wrong and when the next attempt comes: without it, a panel that does
// not answer leaves the Event Log silent from the request to the Sync
// Failure, which can be minutes. A run writes one such event per attempt
// it retries, so at most max-attempts minus one.
func (e *Engine) retry(ctx context.Context, r models.Run, failure *runError, now time.Time) error {
	// An uncounted failure (the bus down) is retried for as long as it
	// lasts, so it waits as a third failure would: every run of a long
	// outage does not come back every second or two.
	uncounted := failure.uncounted
	wait, next := e.backoff(r.Attempt), r.Attempt+1
	if uncounted {
		wait, next = e.backoff(max(r.Attempt, 3)), r.Attempt
	}
	e.log.Info("run attempt failed; retrying", "run_id", r.ID, "attempt", r.Attempt, "code", failure.code, "counted", !uncounted, "retry_in", wait.Round(time.Millisecond).String())
	retryAt := now.Add(wait)
	return e.store.Tx(ctx, func(ctx context.Context) error {
		if err := e.store.RetryRun(ctx, r.ID, e.cfg.Owner, retryAt, failure.code, failure.message, !uncounted); err != nil {
			return err
		}
		data := map[string]any{"kind": r.Kind, "code": failure.code, "attempt": r.Attempt,
			"next_attempt": next, "max_attempts": e.cfg.MaxAttempts, "retry_at": retryAt, "counted": !uncounted}
		if r.BatchID != nil {
			data["batch_id"] = *r.BatchID
		}
		// An outage that outlasts several retries is told once, when it
		// first stops the run, not at every retry.
		if uncounted && r.ErrorCode == failure.code {
			return nil
		}
		_, err := e.events.Append(ctx, models.NewEvent{
			AccountID: r.AccountID, LocationID: r.LocationID, RunID: r.ID, OccurredAt: now, Data: data,
			Type: models.EventSyncRetrying, Severity: models.SeverityWarning,
			Message: retryMessage(r.Kind, r.TriggerSource, failure.message, wait, next, e.cfg.MaxAttempts),
		})
		return err
	})
}

// settle finishes a run succeeded or failed, in the transaction carried by
// ctx and guarded by its lease: the outcome, the location's sync summary,
// its batch's progress, the sync.succeeded or sync.failed event (the Sync
// Failure) saying detail, and the report mailed with reportDetail.
func (e *Engine) settle(ctx context.Context, r models.Run, loc models.Location, outcome models.RunOutcome, detail, reportDetail string, data map[string]any, now time.Time) error {
	if err := e.store.FinishRun(ctx, r.ID, e.cfg.Owner, outcome, now); err != nil {
		return err
	}
	succeeded := outcome.State == models.RunSucceeded
	if err := e.store.RecordRunFinished(ctx, r.LocationID, r.Kind, succeeded, now); err != nil {
		return err
	}
	if r.BatchID != nil {
		models.AfterCommit(ctx, func() { e.noteBatch(*r.BatchID) })
	}
	e.finishedAfterCommit(ctx, r, outcome.State, now)
	ev := models.NewEvent{
		AccountID: r.AccountID, LocationID: r.LocationID, LocationName: loc.Name, RunID: r.ID, OccurredAt: now, Data: data,
		Type: models.EventSyncSucceeded, Severity: models.SeverityInfo,
		Message: fmt.Sprintf("%s %s: %s", runLabel(r.Kind, r.TriggerSource), outcome.State, detail),
	}
	if !succeeded {
		ev.Type, ev.Severity = models.EventSyncFailed, models.SeverityError
	}
	if _, err := e.events.Append(ctx, ev); err != nil {
		return err
	}
	return e.reportRun(ctx, r, loc, string(outcome.State), reportDetail)
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
