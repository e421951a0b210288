package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/panelsync/panelsync/models"
)

// runFinisher is what finishing a run needs from the rest of the engine:
// holding a run's changes for a person, telling the run's batch, and
// mailing the location's report.
type runFinisher interface {
	hold(ctx context.Context, r models.Run, out attemptOutcome, res applied, now time.Time) error
	noteBatch(batchID string)
	reportRun(ctx context.Context, r models.Run, loc models.Location, outcome, detail string) error
}

// completer writes the outcome of a run's attempt: its changes applied
// and the run succeeded, held for a person or failed, in one transaction
// guarded by the run's lease; or the run back in the queue for another
// attempt after a transient failure. It counts the runs that finish.
type completer struct {
	store  *models.Store
	events *models.EventLog
	// owner names the lease that guards every write.
	owner       string
	maxAttempts int
	retryBase   time.Duration
	retryMax    time.Duration
	metrics     *Metrics
	log         *slog.Logger
	now         func() time.Time
	engine      runFinisher

	// beforeSettle, when set, runs inside the transaction that finishes a
	// run, after its changes are applied; tests set it to break that
	// step.
	beforeSettle atomic.Pointer[func(models.Run)]
}

func newCompleter(cfg Config, store *models.Store, events *models.EventLog, now func() time.Time, engine runFinisher) *completer {
	return &completer{
		store:       store,
		events:      events,
		owner:       cfg.Owner,
		maxAttempts: cfg.MaxAttempts,
		retryBase:   cfg.RetryBase,
		retryMax:    cfg.RetryMax,
		metrics:     cfg.Metrics,
		log:         cfg.Logger,
		now:         now,
		engine:      engine,
	}
}

// record writes an attempt's outcome: success applies the changes and
// finishes the run in one transaction guarded by the lease; a transient
// failure with attempts left goes back in the queue; anything else is a
// Sync Failure.
func (c *completer) record(ctx context.Context, r models.Run, out attemptOutcome) error {
	now := c.now()
	if out.err == nil {
		return c.store.Tx(ctx, func(ctx context.Context) error {
			res, err := out.apply(ctx)
			if err != nil {
				return err
			}
			if hook := c.beforeSettle.Load(); hook != nil {
				(*hook)(r)
			}
			if res.hold != "" {
				return c.engine.hold(ctx, r, out, res, now)
			}
			if res.failed != nil {
				// The panel took part of the push: the record holds what it
				// confirmed, and the run is a Sync Failure so that someone
				// looks at the users it lists as failed.
				return c.settle(ctx, r, out.location, models.RunOutcome{
					State: models.RunFailed, Mode: out.mode,
					Added: res.counts.Added, Updated: res.counts.Updated, Removed: res.counts.Removed, Unchanged: res.counts.Unchanged,
					ErrorCode: res.failed.code, ErrorMessage: res.failed.message, Data: out.data, Changes: res.changes,
				}, res.failed.message, res.failed.message+" Applied: "+res.summary+".",
					withNote(map[string]any{"kind": r.Kind, "code": res.failed.code, "attempt": r.Attempt, "changes": res.counts}, res.note), now)
			}
			return c.settle(ctx, r, out.location, models.RunOutcome{
				State: models.RunSucceeded, Mode: out.mode,
				Added: res.counts.Added, Updated: res.counts.Updated, Removed: res.counts.Removed, Unchanged: res.counts.Unchanged,
				Data: out.data, Changes: res.changes,
			}, res.summary, res.summary,
				withNote(map[string]any{"kind": r.Kind, "mode": out.mode, "changes": res.counts, "attempt": r.Attempt}, res.note), now)
		})
	}
	if !out.err.permanent && (out.err.uncounted || r.Attempt < c.maxAttempts) {
		return c.retry(ctx, r, out.err, now)
	}
	return c.store.Tx(ctx, func(ctx context.Context) error {
		return c.settle(ctx, r, out.location, models.RunOutcome{
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
func (c *completer) retry(ctx context.Context, r models.Run, failure *runError, now time.Time) error {
	// An uncounted failure (the bus down) is retried for as long as it
	// lasts, so it waits as a third failure would: every run of a long
	// outage does not come back every second or two.
	uncounted := failure.uncounted
	wait, next := c.backoff(r.Attempt), r.Attempt+1
	if uncounted {
		wait, next = c.backoff(max(r.Attempt, 3)), r.Attempt
	}
	c.log.Info("run attempt failed; retrying", "run_id", r.ID, "attempt", r.Attempt, "code", failure.code, "counted", !uncounted, "retry_in", wait.Round(time.Millisecond).String())
	retryAt := now.Add(wait)
	return c.store.Tx(ctx, func(ctx context.Context) error {
		if err := c.store.RetryRun(ctx, r.ID, c.owner, retryAt, failure.code, failure.message, !uncounted); err != nil {
			return err
		}
		data := map[string]any{"kind": r.Kind, "code": failure.code, "attempt": r.Attempt,
			"next_attempt": next, "max_attempts": c.maxAttempts, "retry_at": retryAt, "counted": !uncounted}
		if r.BatchID != nil {
			data["batch_id"] = *r.BatchID
		}
		// An outage that outlasts several retries is told once, when it
		// first stops the run, not at every retry.
		if uncounted && r.ErrorCode == failure.code {
			return nil
		}
		_, err := c.events.Append(ctx, models.NewEvent{
			AccountID: r.AccountID, LocationID: r.LocationID, RunID: r.ID, OccurredAt: now, Data: data,
			Type: models.EventSyncRetrying, Severity: models.SeverityWarning,
			Message: retryMessage(r.Kind, r.TriggerSource, failure.message, wait, next, c.maxAttempts),
		})
		return err
	})
}

// backoff is the wait before attempt n+1: exponential from RetryBase,
// capped, with full jitter so that many runs failing together do not retry
// together.
func (c *completer) backoff(attempt int) time.Duration {
	d := c.retryBase << min(attempt-1, 16)
	if d <= 0 || d > c.retryMax {
		d = c.retryMax
	}
	return d/2 + rand.N(d/2+1)
}

// settle finishes a run succeeded or failed, in the transaction carried by
// ctx and guarded by its lease: the outcome, the location's sync summary,
// its batch's progress, the sync.succeeded or sync.failed event (the Sync
// Failure) saying detail, and the report mailed with reportDetail.
func (c *completer) settle(ctx context.Context, r models.Run, loc models.Location, outcome models.RunOutcome, detail, reportDetail string, data map[string]any, now time.Time) error {
	if err := c.store.FinishRun(ctx, r.ID, c.owner, outcome, now); err != nil {
		return err
	}
	succeeded := outcome.State == models.RunSucceeded
	if err := c.store.RecordRunFinished(ctx, r.LocationID, r.Kind, succeeded, now); err != nil {
		return err
	}
	if r.BatchID != nil {
		models.AfterCommit(ctx, func() { c.engine.noteBatch(*r.BatchID) })
	}
	m := c.metrics
	models.AfterCommit(ctx, func() { m.runFinished(r, outcome.State, now) })
	ev := models.NewEvent{
		AccountID: r.AccountID, LocationID: r.LocationID, LocationName: loc.Name, RunID: r.ID, OccurredAt: now, Data: data,
		Type: models.EventSyncSucceeded, Severity: models.SeverityInfo,
		Message: fmt.Sprintf("%s %s: %s", runLabel(r.Kind, r.TriggerSource), outcome.State, detail),
	}
	if !succeeded {
		ev.Type, ev.Severity = models.EventSyncFailed, models.SeverityError
	}
	if _, err := c.events.Append(ctx, ev); err != nil {
		return err
	}
	return c.engine.reportRun(ctx, r, loc, string(outcome.State), reportDetail)
}
