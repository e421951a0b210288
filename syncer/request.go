package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// SyncRequest asks for one run at one location.
type SyncRequest struct {
	LocationID string
	Kind       models.RunKind
	Trigger    models.RunTrigger
	// BatchID groups the runs of one All-Locations request.
	BatchID string
	// Full asks for a full users sync even where the panel's watermark
	// would allow an incremental one.
	Full bool
	// Push is what an import or re-apply run carries to its panel.
	Push *pushPayload
}

// pushPayload is what a run that pushes users to a panel is created with.
type pushPayload struct {
	data          []byte
	codes         []byte
	importID      *string
	reappliedFrom *string
	approvedBy    string
}

// apply copies the payload onto a run about to be inserted.
func (p *pushPayload) apply(r *models.Run) {
	if p == nil {
		return
	}
	r.Data, r.Codes, r.ImportID, r.ReappliedFrom, r.ApprovedBy = p.data, p.codes, p.importID, p.reappliedFrom, p.approvedBy
}

// ParseKind checks a kind a client asked for.
func ParseKind(s string) (models.RunKind, error) {
	switch k := models.RunKind(s); k {
	case models.RunUsers, models.RunPanel, models.RunRefresh:
		return k, nil
	}
	return "", models.FieldError("kind", "kind must be users, panel or refresh")
}

// RequestSync enqueues a run, or returns the run of that kind already
// queued or running at the location with deduplicated true. A panel that
// is not connected, whose credential expired, or (for a panel sync) that
// is armed, is refused with that code; the refusal is recorded as a run
// that failed at once, with its Sync Failure event, exactly as a batch
// records a location that cannot run, so that the Event Log shows that
// the request was made and could not reach the panel.
func (e *Engine) RequestSync(ctx context.Context, actor models.Actor, req SyncRequest) (models.Run, bool, error) {
	var (
		run     models.Run
		dedup   bool
		refusal error
	)
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		loc, err := e.store.Location(ctx, actor.AccountID, req.LocationID)
		if err != nil {
			return err
		}
		if refusal = checkRunnable(loc, req.Kind); refusal != nil {
			return e.recordRefused(ctx, actor, loc, req, refusal)
		}
		run, dedup, err = e.enqueue(ctx, actor, loc, req)
		return err
	})
	if err != nil {
		return models.Run{}, false, err
	}
	if refusal != nil {
		return models.Run{}, false, refusal
	}
	return run, dedup, nil
}

// enqueue inserts a run for a location that can take it, with its
// sync.requested event, in the caller's transaction.
func (e *Engine) enqueue(ctx context.Context, actor models.Actor, loc models.LocationView, req SyncRequest) (models.Run, bool, error) {
	mode := models.ModeFull
	if req.Kind == models.RunUsers && !req.Full && !loc.Location.ForcePending && !loc.Location.ForceUpdateAll && loc.Panel.UsersWatermark != "" {
		mode = models.ModeIncremental
	}
	r := models.Run{
		AccountID:     loc.Location.AccountID,
		LocationID:    loc.Location.ID,
		Kind:          req.Kind,
		Mode:          mode,
		TriggerSource: req.Trigger,
		RequestedBy:   actor.Name,
		AvailableAt:   e.now(),
		WorkerRank:    loc.Location.WorkerRank,
	}
	if req.BatchID != "" {
		r.BatchID = &req.BatchID
	}
	req.Push.apply(&r)
	run, dedup, err := e.store.EnqueueRun(ctx, r)
	if err != nil {
		return run, false, err
	}
	if dedup && run.State == models.RunAwaitingApply {
		return models.Run{}, false, heldConflict(run)
	}
	if dedup {
		return run, true, nil
	}
	if err := e.store.MarkLocationSyncing(ctx, loc.Location.ID, req.Kind); err != nil {
		return run, false, err
	}
	_, err = e.events.Append(ctx, models.NewEvent{
		AccountID: loc.Location.AccountID, LocationID: loc.Location.ID, LocationName: loc.Location.Name, RunID: run.ID,
		Type: models.EventSyncRequested, Severity: models.SeverityInfo,
		Message: requestedMessage(actor, req.Kind, req.Trigger),
		Data:    eventData(map[string]any{"kind": req.Kind, "mode": mode, "trigger": req.Trigger}, req.BatchID),
	})
	if err != nil {
		return run, false, err
	}
	models.AfterCommit(ctx, e.announce)
	return run, false, nil
}

// enqueueOrFail starts a run where the panel can take one, and otherwise
// records the run as failed with the reason and its Sync Failure event:
// for batches and schedules, where one location that cannot run must not
// hold up the rest.
func (e *Engine) enqueueOrFail(ctx context.Context, actor models.Actor, loc models.LocationView, req SyncRequest) (dedup bool, failed bool, err error) {
	refusal := checkRunnable(loc, req.Kind)
	if refusal == nil {
		_, dedup, err = e.enqueue(ctx, actor, loc, req)
		var de *models.Error
		if !errors.As(err, &de) || de.Code != models.CodeConflict {
			return dedup, false, err
		}
		// A held run of the kind is waiting there: this one fails with
		// that reason, as a location that cannot run does.
		refusal = err
	}
	if err := e.recordRefused(ctx, actor, loc, req, refusal); err != nil {
		return false, false, err
	}
	return false, true, nil
}

// recordRefused records a run that could not start at the location, in
// the transaction carried by ctx: a run that failed at once with the
// refusal's code and reason, the location's Sync Failure, and the
// sync.failed event saying who asked and why nothing reached the panel.
func (e *Engine) recordRefused(ctx context.Context, actor models.Actor, loc models.LocationView, req SyncRequest, refusal error) error {
	de, _ := refusal.(*models.Error)
	r := models.Run{
		AccountID: loc.Location.AccountID, LocationID: loc.Location.ID, Kind: req.Kind, Mode: models.ModeFull,
		TriggerSource: req.Trigger, RequestedBy: actor.Name, AvailableAt: e.now(),
		ErrorCode: de.Code, ErrorMessage: de.Message, WorkerRank: loc.Location.WorkerRank,
	}
	if req.BatchID != "" {
		r.BatchID = &req.BatchID
	}
	// A pushed list that could not start is kept, so it can be re-applied
	// once the panel is back.
	req.Push.apply(&r)
	run, err := e.store.InsertFailedRun(ctx, r)
	if err != nil {
		return err
	}
	if err := e.store.RecordRunFinished(ctx, loc.Location.ID, req.Kind, false, e.now()); err != nil {
		return err
	}
	e.finishedAfterCommit(ctx, run, models.RunFailed, e.now())
	_, err = e.events.Append(ctx, models.NewEvent{
		AccountID: loc.Location.AccountID, LocationID: loc.Location.ID, LocationName: loc.Location.Name, RunID: run.ID,
		Type: models.EventSyncFailed, Severity: models.SeverityError,
		Message: refusedMessage(actor, req.Kind, req.Trigger, de.Message),
		Data:    eventData(map[string]any{"kind": req.Kind, "code": de.Code, "attempt": 0}, req.BatchID),
	})
	return err
}

// announce wakes this node's producer and, through the bus, the others'.
func (e *Engine) announce() {
	e.Wake()
	if e.notifier != nil {
		e.notifier.PublishWake()
	}
}

// heldConflict refuses a run while a run of its kind at the location
// waits for a person's Apply: the held run's changes would otherwise be
// overtaken by a newer read before anyone decided on them.
func heldConflict(held models.Run) error {
	return models.Errorf(models.CodeConflict, "a %s at this location is held for apply (run %s): apply or cancel it first",
		strings.ToLower(kindLabel(held.Kind)), held.ID)
}

// checkRunnable refuses a run its panel cannot take now.
func checkRunnable(loc models.LocationView, kind models.RunKind) error {
	switch loc.Panel.Connection {
	case models.PanelAuthorizationExpired:
		return models.Errorf(models.CodePanelAuthorizationExpired, "the panel's device credential has expired or was revoked, so the panel cannot connect; issue it a new one")
	case models.PanelConnected:
	default:
		return models.Errorf(models.CodePanelDisconnected, "the panel is not connected, so the request could not reach it; try again once the panel is back online")
	}
	if kind == models.RunPanel && panel.IsArmed(loc.Panel.ArmedState) {
		return models.Errorf(models.CodePanelArmed, "the panel is %s; disarm it before a panel sync", panel.ArmedStateLabel(loc.Panel.ArmedState))
	}
	return nil
}

// CancelRun cancels a queued, running or held run of the account; nothing
// more of it is applied. A run that has already ended answers
// invalid_state.
func (e *Engine) CancelRun(ctx context.Context, actor models.Actor, runID string) (models.Run, error) {
	var out models.Run
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		r, err := e.store.RunForUpdate(ctx, actor.AccountID, runID)
		if err != nil {
			return err
		}
		now := e.now()
		var ok bool
		switch r.State {
		case models.RunQueued:
			ok, err = e.store.CancelQueuedRun(ctx, r.ID, now)
		case models.RunRunning:
			ok, err = e.store.CancelRunningRun(ctx, r.ID, now)
		case models.RunAwaitingApply:
			ok, err = e.store.SettleHeldRun(ctx, r.ID, models.RunOutcome{State: models.RunCancelled}, now)
		}
		if err != nil {
			return err
		}
		if !ok {
			return models.Errorf(models.CodeInvalidState, "the run has already ended (%s) and can no longer be cancelled", r.State)
		}
		err = e.recordCancelled(ctx, actor, r, "run.cancel",
			fmt.Sprintf("%s cancelled by %s", kindLabel(r.Kind), actor.Name), map[string]any{"kind": r.Kind})
		if err != nil {
			return err
		}
		out, err = e.store.Run(ctx, actor.AccountID, runID)
		return err
	})
	return out, err
}

// recordCancelled writes what follows a run's cancellation, in the
// transaction carried by ctx: the location's status, its batch's
// progress, the audit entry and the sync.cancelled event.
func (e *Engine) recordCancelled(ctx context.Context, actor models.Actor, r models.Run, action, message string, data map[string]any) error {
	if err := e.store.RefreshSyncStatus(ctx, r.LocationID); err != nil {
		return err
	}
	e.finishedAfterCommit(ctx, r, models.RunCancelled, e.now())
	if r.BatchID != nil {
		batchID := *r.BatchID
		models.AfterCommit(ctx, func() { e.noteBatch(batchID) })
	}
	// A run is known by where it ran, as the Apply of a held run names it.
	places, err := e.store.LocationNames(ctx, r.AccountID, []string{r.LocationID})
	if err != nil {
		return err
	}
	if err := e.store.Audit(ctx, actor, models.AuditChange{
		Action: action, Target: models.AuditTarget{Type: "run", ID: r.ID, Name: places[r.LocationID]},
		Before: map[string]any{"kind": r.Kind, "state": r.State, "location_id": r.LocationID},
		After:  map[string]any{"kind": r.Kind, "state": models.RunCancelled, "location_id": r.LocationID},
	}); err != nil {
		return err
	}
	_, err = e.events.Append(ctx, models.NewEvent{
		AccountID: r.AccountID, LocationID: r.LocationID, RunID: r.ID,
		Type: models.EventSyncCancelled, Severity: models.SeverityWarning, OccurredAt: e.now(),
		Message: message, Data: data,
	})
	return err
}

// eventData adds the batch id to an event's data when the run has one.
func eventData(data map[string]any, batchID string) map[string]any {
	if batchID != "" {
		data["batch_id"] = batchID
	}
	return data
}
