package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// heldUsers is what a held users run keeps for its apply beside the users
// it received: the keyed digests of their codes, which the download of the
// run's data never shows.
type heldUsers struct {
	Digests map[int]string `json:"digests"`
}

// holdReason says why a users run's changes must wait for a person, or ""
// when they may be applied at once. A run that changes nothing is never
// held: there is nothing to approve. Otherwise it is held when the
// location applies nothing automatically, when the users it would update
// or remove are more than the threshold's share of those on record, or
// when all it would change is more than the threshold's count.
func holdReason(loc models.Location, onRecord int, c counts) string {
	changed := c.Added + c.Updated + c.Removed
	switch {
	case changed == 0:
		return ""
	case !loc.AutoApply:
		return "automatic apply is off at this location"
	case float64(c.Updated+c.Removed)*100 > float64(loc.SafetyThresholdPercent)*float64(onRecord):
		return fmt.Sprintf("it would update or remove %d of the %d users on record, over the safety threshold of %d%%",
			c.Updated+c.Removed, onRecord, loc.SafetyThresholdPercent)
	case loc.SafetyThresholdCount > 0 && changed > loc.SafetyThresholdCount:
		return fmt.Sprintf("it would change %d users, over the safety threshold of %d", changed, loc.SafetyThresholdCount)
	}
	return ""
}

// hold finishes a run's attempt as held, in the transaction carried by
// ctx: the run keeps its place (no second run of its kind starts there)
// and what its apply needs, the location shows held, and sync.held says
// why, with the counts.
func (e *Engine) hold(ctx context.Context, r models.Run, out attemptOutcome, res applied, now time.Time) error {
	err := e.store.FinishRun(ctx, r.ID, e.cfg.Owner, models.RunOutcome{
		State: models.RunAwaitingApply, Mode: out.mode,
		Added: res.counts.Added, Updated: res.counts.Updated, Removed: res.counts.Removed, Unchanged: res.counts.Unchanged,
		Data: out.data, Changes: res.changes, Pending: res.pending,
	}, now)
	if err != nil {
		return err
	}
	if err := e.store.RecordRunHeld(ctx, r.LocationID); err != nil {
		return err
	}
	if r.BatchID != nil {
		models.AfterCommit(ctx, func() { e.noteBatch(*r.BatchID) })
		// The batch's held notice goes out with the hold that completes
		// it, so that a person quick to apply cannot overtake it.
		b, err := e.store.BatchByID(ctx, *r.BatchID)
		if err != nil {
			return err
		}
		st, err := e.status(ctx, b)
		if err != nil {
			return err
		}
		if err := e.reportHeldBatch(ctx, b, st, now); err != nil {
			return err
		}
	}
	_, err = e.events.Append(ctx, models.NewEvent{
		AccountID: r.AccountID, LocationID: r.LocationID, LocationName: out.location.Name, RunID: r.ID,
		Type: models.EventSyncHeld, Severity: models.SeverityWarning, OccurredAt: now,
		Message: fmt.Sprintf("%s held for apply: %s (%s)", kindLabel(r.Kind), res.summary, res.hold),
		Data:    map[string]any{"kind": r.Kind, "mode": out.mode, "changes": res.counts, "reason": res.hold},
	})
	if err != nil {
		return err
	}
	return e.reportRun(ctx, r, out.location, "held for apply", fmt.Sprintf("%s; held because %s. Apply or cancel run %s.", res.summary, res.hold, r.ID))
}

// ApplyRun applies a held run's changes, as a person approved them, and
// finishes it succeeded. Only a run awaiting apply may be applied.
func (e *Engine) ApplyRun(ctx context.Context, actor models.Actor, runID string) (models.Run, error) {
	var out models.Run
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		r, err := e.store.HeldRunPayload(ctx, actor.AccountID, runID)
		if err != nil {
			return err
		}
		if r.State != models.RunAwaitingApply {
			return models.Errorf(models.CodeInvalidState, "the run is %s; only a run awaiting apply can be applied", r.State)
		}
		loc, err := e.store.LocationByID(ctx, r.LocationID)
		if err != nil {
			return err
		}
		if r.Kind == models.RunImport {
			if err := e.approvePush(ctx, actor, r, loc); err != nil {
				return err
			}
			out, err = e.store.Run(ctx, actor.AccountID, runID)
			return err
		}
		var kept UsersData
		var pending heldUsers
		if err := json.Unmarshal(r.Data, &kept); err != nil {
			return fmt.Errorf("read held run %s: %w", r.ID, err)
		}
		if err := json.Unmarshal(r.Pending, &pending); err != nil {
			return fmt.Errorf("read held run %s: %w", r.ID, err)
		}
		existing, err := e.store.PanelUsers(ctx, r.LocationID)
		if err != nil {
			return err
		}
		res, err := e.applyUsers(ctx, loc, r.ID, r.Mode, kept, pending.Digests, existing)
		if err != nil {
			return err
		}
		res.summary = usersSummary(res.counts, len(existing), kept.Full)
		now := e.now()
		ok, err := e.store.SettleHeldRun(ctx, r.ID, models.RunOutcome{
			State: models.RunSucceeded, Added: res.counts.Added, Updated: res.counts.Updated,
			Removed: res.counts.Removed, Unchanged: res.counts.Unchanged, Changes: res.changes,
		}, now)
		if err != nil {
			return err
		}
		if !ok {
			return models.Errorf(models.CodeInvalidState, "the run is no longer awaiting apply")
		}
		if err := e.store.RecordRunFinished(ctx, r.LocationID, r.Kind, true, now); err != nil {
			return err
		}
		e.finishedAfterCommit(ctx, r, models.RunSucceeded, now)
		if r.BatchID != nil {
			batchID := *r.BatchID
			models.AfterCommit(ctx, func() { e.noteBatch(batchID) })
		}
		if err := e.auditApply(ctx, actor, r, loc.Location, map[string]any{"state": models.RunSucceeded, "changes": res.counts}); err != nil {
			return err
		}
		_, err = e.events.Append(ctx, models.NewEvent{
			AccountID: r.AccountID, LocationID: r.LocationID, LocationName: loc.Location.Name, RunID: r.ID,
			Type: models.EventSyncSucceeded, Severity: models.SeverityInfo, OccurredAt: now,
			Message: fmt.Sprintf("%s applied by %s: %s", kindLabel(r.Kind), actor.Name, res.summary),
			Data:    map[string]any{"kind": r.Kind, "mode": r.Mode, "changes": res.counts, "applied_by": actor.Name},
		})
		if err != nil {
			return err
		}
		if err := e.reportRun(ctx, r, loc.Location, "applied by "+actor.Name, res.summary); err != nil {
			return err
		}
		out, err = e.store.Run(ctx, actor.AccountID, runID)
		return err
	})
	return out, err
}

// MarkCancelled ends a run in any state but a final one, even where that
// may be unsafe: a run a worker is executing may have changed the panel
// part way. The event says so, for whoever checks the panel next.
func (e *Engine) MarkCancelled(ctx context.Context, actor models.Actor, runID string) (models.Run, error) {
	var out models.Run
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		r, err := e.store.RunForUpdate(ctx, actor.AccountID, runID)
		if err != nil {
			return err
		}
		now := e.now()
		ok, err := e.store.MarkRunCancelled(ctx, r.ID, now)
		if err != nil {
			return err
		}
		if !ok {
			return models.Errorf(models.CodeInvalidState, "the run has already ended (%s); there is nothing to mark cancelled", r.State)
		}
		msg := fmt.Sprintf("%s marked cancelled by %s while %s", kindLabel(r.Kind), actor.Name, strings.ReplaceAll(string(r.State), "_", " "))
		if r.State == models.RunRunning {
			msg += "; it was under way, so the panel may hold part of its changes: check the panel with a full user sync"
		}
		err = e.recordCancelled(ctx, actor, r, "run.mark_cancelled", msg,
			map[string]any{"kind": r.Kind, "was": r.State, "unsafe": r.State == models.RunRunning})
		if err != nil {
			return err
		}
		out, err = e.store.Run(ctx, actor.AccountID, runID)
		return err
	})
	return out, err
}

// auditApply records a person's Apply of a held run; after holds what the
// run became beside its kind and location.
func (e *Engine) auditApply(ctx context.Context, actor models.Actor, r models.Run, loc models.Location, after map[string]any) error {
	after["kind"], after["location_id"] = r.Kind, r.LocationID
	return e.store.Audit(ctx, actor, models.AuditChange{
		Action: "run.apply", Target: models.AuditTarget{Type: "run", ID: r.ID, Name: loc.Name},
		Before: map[string]any{"kind": r.Kind, "state": r.State, "location_id": r.LocationID},
		After:  after,
	})
}

// approvePush sends a held import back to the queue approved, in the
// transaction carried by ctx: a worker pushes it to the panel, reads the
// panel back and finishes it. The panel must be able to take it now.
func (e *Engine) approvePush(ctx context.Context, actor models.Actor, r models.Run, loc models.LocationView) error {
	if err := checkRunnable(loc, r.Kind); err != nil {
		return err
	}
	now := e.now()
	ok, err := e.store.ApproveHeldRun(ctx, r.ID, actor.Name, now)
	if err != nil {
		return err
	}
	if !ok {
		return models.Errorf(models.CodeInvalidState, "the run is no longer awaiting apply")
	}
	if err := e.store.MarkLocationSyncing(ctx, r.LocationID, r.Kind); err != nil {
		return err
	}
	if err := e.auditApply(ctx, actor, r, loc.Location, map[string]any{"state": models.RunQueued, "approved_by": actor.Name}); err != nil {
		return err
	}
	_, err = e.events.Append(ctx, models.NewEvent{
		AccountID: r.AccountID, LocationID: r.LocationID, LocationName: loc.Location.Name, RunID: r.ID,
		Type: models.EventSyncRequested, Severity: models.SeverityInfo, OccurredAt: now,
		Message: fmt.Sprintf("%s applied by %s: sending it to the panel", runLabel(r.Kind, r.TriggerSource), actor.Name),
		Data:    map[string]any{"kind": r.Kind, "mode": r.Mode, "trigger": r.TriggerSource, "applied_by": actor.Name},
	})
	if err != nil {
		return err
	}
	models.AfterCommit(ctx, e.announce)
	return nil
}

// ReapplyRun starts a run that brings a location's panel and record back
// to the user list of a finished users or import run, applied at once (a
// person asked for exactly that list). An import's codes come back with
// it; a panel read's cannot, as panels' codes are kept only as digests, so
// users it puts back have none and are listed as code_missing.
func (e *Engine) ReapplyRun(ctx context.Context, actor models.Actor, runID string) (models.Run, error) {
	var out models.Run
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		src, err := e.store.RunPayload(ctx, actor.AccountID, runID)
		if err != nil {
			return err
		}
		if src.Kind != models.RunUsers && src.Kind != models.RunImport {
			return models.Errorf(models.CodeInvalidState, "a %s run has no user list to re-apply; only users and import runs do", src.Kind)
		}
		if src.State != models.RunSucceeded && src.State != models.RunFailed {
			return models.Errorf(models.CodeInvalidState, "the run is %s; only a finished run (succeeded or failed) can be re-applied", strings.ReplaceAll(string(src.State), "_", " "))
		}
		if len(src.Data) == 0 {
			return models.Errorf(models.CodeInvalidState, "the run ended before it received a user list; there is nothing to re-apply")
		}
		var list UsersData
		if err := json.Unmarshal(src.Data, &list); err != nil {
			return fmt.Errorf("read run %s: %w", src.ID, err)
		}
		if !list.Full {
			return models.Errorf(models.CodeInvalidState, "the run read only the changes since the sync before it, not the whole list; re-apply a full user sync")
		}
		loc, err := e.store.Location(ctx, actor.AccountID, src.LocationID)
		if err != nil {
			return err
		}
		if err := checkRunnable(loc, models.RunImport); err != nil {
			return err
		}
		restore := UsersData{Full: true, Users: list.Users, ExternalIDs: list.ExternalIDs, Protected: list.Protected, KeepUnsetCodes: list.KeepUnsetCodes}
		data, err := json.Marshal(restore)
		if err != nil {
			return err
		}
		from := src.ID
		push := &pushPayload{data: data, codes: src.Codes, reappliedFrom: &from, approvedBy: actor.Name}
		run, dedup, err := e.enqueue(ctx, actor, loc, SyncRequest{LocationID: loc.Location.ID, Kind: models.RunImport, Trigger: models.TriggerReapply, Push: push})
		if err != nil {
			return err
		}
		if dedup {
			return models.Errorf(models.CodeConflict, "an import is already %s at this location (run %s): wait for it or cancel it, then re-apply", run.State, run.ID)
		}
		if err := e.store.Audit(ctx, actor, models.AuditChange{
			Action: "run.reapply", Target: models.AuditTarget{Type: "run", ID: src.ID, Name: loc.Location.Name},
			After: map[string]any{"run_id": run.ID, "kind": src.Kind, "location_id": src.LocationID, "users": len(list.Users)},
		}); err != nil {
			return err
		}
		out, err = e.store.Run(ctx, actor.AccountID, run.ID)
		return err
	})
	return out, err
}
