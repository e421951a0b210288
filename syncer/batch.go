package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// Bounds on batches.
const (
	maxBatchLocationIDs = 10000
	batchChunk          = 200
	batchProgressEvery  = time.Second
)

// BatchRequest is an All-Locations request: every location of the
// account, of a group, or of a list.
type BatchRequest struct {
	Kind        models.RunKind
	Scope       string
	Group       string
	LocationIDs []string
	// Trigger is what every run of the batch records as its trigger;
	// empty means TriggerApp.
	Trigger models.RunTrigger
}

// BatchStatus is a batch with its runs counted by state. Locations whose
// runs are not created yet count as queued.
type BatchStatus struct {
	Batch     models.Batch
	Queued    int
	Running   int
	Succeeded int
	Failed    int
	Cancelled int
	// Held counts the runs awaiting a person's Apply, which Running
	// includes: the batch is not done while they wait.
	Held int
}

// validateScope checks a scope and returns its location count.
func (e *Engine) validateScope(ctx context.Context, accountID, scope, group string, ids []string) (int, error) {
	switch scope {
	case models.ScopeAll:
	case models.ScopeGroup:
		if strings.TrimSpace(group) == "" {
			return 0, models.FieldError("group", "group is required with scope group")
		}
	case models.ScopeLocations:
		if len(ids) == 0 || len(ids) > maxBatchLocationIDs {
			return 0, models.FieldError("location_ids", "location_ids must list 1 to %d locations", maxBatchLocationIDs)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				return 0, models.FieldError("location_ids", "location %s is listed twice", id)
			}
			seen[id] = true
		}
		found, err := e.store.LocationIDsInAccount(ctx, accountID, ids)
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			if !found[id] {
				return 0, &models.Error{Code: models.CodeNotFound, Field: "location_ids", Message: fmt.Sprintf("location %s not found", id)}
			}
		}
	default:
		return 0, models.FieldError("scope", "scope must be all, group or locations")
	}
	n, err := e.store.CountScope(ctx, accountID, scope, group, ids)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, models.FieldError("scope", "no locations in that scope")
	}
	return n, nil
}

// StartBatch records a batch and answers at once; its runs are created in
// chunks in the background, so a request for 10,000 locations returns as
// fast as one for ten.
func (e *Engine) StartBatch(ctx context.Context, actor models.Actor, req BatchRequest) (BatchStatus, error) {
	req.Group = strings.TrimSpace(req.Group)
	if req.Scope != models.ScopeGroup {
		req.Group = ""
	}
	total, err := e.validateScope(ctx, actor.AccountID, req.Scope, req.Group, req.LocationIDs)
	if err != nil {
		return BatchStatus{}, err
	}
	ids, _ := json.Marshal(req.LocationIDs)
	b := models.Batch{
		ID: models.NewID(), AccountID: actor.AccountID, Kind: req.Kind, Scope: req.Scope,
		GroupName: req.Group, LocationIDs: string(ids), RequestedBy: actor.Name,
		TriggerSource: req.Trigger, Total: total, State: models.BatchRunning,
	}
	if b.TriggerSource == "" {
		b.TriggerSource = models.TriggerApp
	}
	if err := e.store.CreateBatch(ctx, &b); err != nil {
		return BatchStatus{}, err
	}
	e.wakeBatches()
	return BatchStatus{Batch: b, Queued: total}, nil
}

// Batch returns a batch of the account with its counts.
func (e *Engine) Batch(ctx context.Context, accountID, id string) (BatchStatus, error) {
	b, err := e.store.Batch(ctx, accountID, id)
	if err != nil {
		return BatchStatus{}, err
	}
	return e.status(ctx, b)
}

// Batches returns a page of the account's batches, newest first, with
// their counts, and the cursor of the next page (empty on the last).
func (e *Engine) Batches(ctx context.Context, q models.BatchQuery) ([]BatchStatus, string, error) {
	batches, next, err := e.store.ListBatches(ctx, q)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, len(batches))
	for i, b := range batches {
		ids[i] = b.ID
	}
	counts, err := e.store.BatchCountsOf(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]BatchStatus, len(batches))
	for i, b := range batches {
		out[i] = statusOf(b, counts[b.ID])
	}
	return out, next, nil
}

func (e *Engine) status(ctx context.Context, b models.Batch) (BatchStatus, error) {
	counts, err := e.store.BatchCounts(ctx, b.ID)
	if err != nil {
		return BatchStatus{}, err
	}
	return statusOf(b, counts), nil
}

// statusOf counts a batch's runs by what a client is told: held runs are
// still running, and locations whose runs are not created yet are queued,
// or cancelled once the batch is.
func statusOf(b models.Batch, counts map[models.RunState]int) BatchStatus {
	st := BatchStatus{
		Batch:  b,
		Queued: counts[models.RunQueued],
		// A run held for a person is not done yet.
		Running:   counts[models.RunRunning] + counts[models.RunAwaitingApply],
		Succeeded: counts[models.RunSucceeded],
		Failed:    counts[models.RunFailed],
		Cancelled: counts[models.RunCancelled],
		Held:      counts[models.RunAwaitingApply],
	}
	created := 0
	for _, n := range counts {
		created += n
	}
	if pending := b.Total - b.Skipped - created; pending > 0 {
		if b.CancelledAt != nil {
			st.Cancelled += pending
		} else {
			st.Queued += pending
		}
	}
	return st
}

// CancelBatch cancels a batch's runs not yet started and stops creating
// more.
func (e *Engine) CancelBatch(ctx context.Context, actor models.Actor, id string) (BatchStatus, error) {
	var b models.Batch
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		var (
			cancelled []models.Run
			err       error
		)
		b, cancelled, err = e.store.CancelBatch(ctx, actor.AccountID, id, e.now())
		if err != nil {
			return err
		}
		// Each location's log ends its run as a single cancel would, so a
		// client that saw sync.requested also sees how it ended.
		events := make([]models.NewEvent, 0, len(cancelled))
		for _, r := range cancelled {
			e.finishedAfterCommit(ctx, r, models.RunCancelled, e.now())
			events = append(events, models.NewEvent{
				AccountID: r.AccountID, LocationID: r.LocationID, RunID: r.ID,
				Type: models.EventSyncCancelled, Severity: models.SeverityWarning,
				Message: fmt.Sprintf("%s cancelled by %s with the rest of its batch (%s)", kindLabel(r.Kind), actor.Name, lowerFirst(scopeLabel(b))),
				Data:    eventData(map[string]any{"kind": r.Kind}, id),
			})
		}
		for len(events) > 0 {
			chunk := events[:min(len(events), cancelEventChunk)]
			events = events[len(chunk):]
			if _, err := e.events.Append(ctx, chunk...); err != nil {
				return err
			}
		}
		return e.store.Audit(ctx, actor, models.AuditChange{
			Action: "batch.cancel", Target: models.AuditTarget{Type: "batch", ID: id, Name: batchName(b)},
			Before: map[string]any{"kind": b.Kind, "scope": b.Scope, "state": b.State},
			After:  map[string]any{"kind": b.Kind, "scope": b.Scope, "state": "done", "runs_cancelled": len(cancelled)},
		})
	})
	if err != nil {
		return BatchStatus{}, err
	}
	e.batchChanged(context.WithoutCancel(ctx), id)
	return e.status(ctx, b)
}

// cancelEventChunk bounds the events written by one statement when a batch
// is cancelled, within every database's limit on bound parameters.
const cancelEventChunk = 500

// batchCheckEvery bounds how often one node looks at a batch's counts
// while its runs finish: a 10,000-run batch is checked a few times a
// second, not 10,000 times.
const batchCheckEvery = 200 * time.Millisecond

// noteBatch schedules a look at a batch after one of its runs ended. Calls
// within batchCheckEvery share one look, which comes after them, so the
// last run's end is always seen.
func (e *Engine) noteBatch(batchID string) {
	e.batchMu.Lock()
	defer e.batchMu.Unlock()
	if e.batchChecks[batchID] {
		return
	}
	e.batchChecks[batchID] = true
	time.AfterFunc(batchCheckEvery, func() {
		e.batchMu.Lock()
		delete(e.batchChecks, batchID)
		e.batchMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.batchChanged(ctx, batchID)
	})
}

func (e *Engine) wakeBatches() {
	select {
	case e.batchWake <- struct{}{}:
	default:
	}
}

// batchLoop creates the runs of new batches and finishes batches whose
// runs are all done, until ctx ends.
func (e *Engine) batchLoop(ctx context.Context) {
	tick := time.NewTicker(e.cfg.Poll)
	defer tick.Stop()
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	for {
		for e.expandOne(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-e.batchWake:
		case <-tick.C:
		case <-sweep.C:
			e.sweepBatches(ctx)
		}
	}
}

// expandOne creates the runs of one batch, chunk by chunk, and reports
// whether it found a batch to work on.
func (e *Engine) expandOne(ctx context.Context) bool {
	now := e.now()
	b, ok, err := e.store.ClaimBatchExpansion(ctx, e.cfg.Owner, now, now.Add(e.cfg.Lease))
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("claim batch", "error", err.Error())
		}
		return false
	}
	if !ok {
		return false
	}
	var ids []string
	_ = json.Unmarshal([]byte(b.LocationIDs), &ids)
	actor := models.Actor{Kind: "batch", Name: b.RequestedBy, AccountID: b.AccountID, Role: models.RoleAdmin}
	trigger := b.TriggerSource
	if trigger == "" {
		trigger = models.TriggerApp
	}
	cursor := b.ExpandCursor
	for {
		if ctx.Err() != nil {
			return false
		}
		done := false
		// The cursor moves on only once the chunk has committed: a
		// transaction run again starts from where the last commit left it.
		next := cursor
		err := e.store.Tx(ctx, func(ctx context.Context) error {
			next = cursor
			skipped := 0
			chunk, err := e.store.ScopeChunk(ctx, b.AccountID, b.Scope, b.GroupName, ids, cursor, batchChunk)
			if err != nil {
				return err
			}
			for _, v := range chunk {
				dedup, _, err := e.enqueueOrFail(ctx, actor, v, SyncRequest{LocationID: v.Location.ID, Kind: b.Kind, Trigger: trigger, BatchID: b.ID})
				if err != nil {
					return err
				}
				if dedup {
					skipped++
				}
				next = v.Location.ID
			}
			done = len(chunk) < batchChunk
			ok, err := e.store.AdvanceBatchExpansion(ctx, b.ID, e.cfg.Owner, next, skipped, done, e.now().Add(e.cfg.Lease))
			if err != nil {
				return err
			}
			if !ok {
				return models.Errorf(models.CodeConflict, "batch expansion taken over")
			}
			return nil
		})
		if err != nil {
			if ctx.Err() == nil && models.ErrorCode(err) != models.CodeConflict {
				e.log.Error("expand batch", "batch_id", b.ID, "error", err.Error())
			}
			return true
		}
		cursor = next
		e.batchChanged(ctx, b.ID)
		if done {
			return true
		}
	}
}

// batchChanged reports a batch's progress, at most about once a second
// across nodes, and finishes it once every run has ended.
func (e *Engine) batchChanged(ctx context.Context, batchID string) {
	b, err := e.store.BatchByID(ctx, batchID)
	if err != nil || b.FinishedAt != nil {
		return
	}
	st, err := e.status(ctx, b)
	if err != nil {
		e.log.Warn("batch status", "batch_id", batchID, "error", err.Error())
		return
	}
	now := e.now()
	data := map[string]any{"batch_id": b.ID, "kind": b.Kind, "total": b.Total - b.Skipped, "queued": st.Queued, "running": st.Running,
		"succeeded": st.Succeeded, "failed": st.Failed, "cancelled": st.Cancelled}
	if (b.Expanded || b.CancelledAt != nil) && st.Queued == 0 && st.Running == 0 {
		err := e.store.Tx(ctx, func(ctx context.Context) error {
			won, err := e.store.FinishBatch(ctx, b.ID, now)
			if err != nil || !won {
				return err
			}
			_, err = e.events.Append(ctx, models.NewEvent{
				AccountID: b.AccountID, Type: models.EventBatchFinished, Severity: models.SeverityInfo,
				Message: batchSummary(b, st) + kindNote(b.Kind), Data: data,
			})
			if err != nil {
				return err
			}
			return e.reportBatch(ctx, b, st)
		})
		if err != nil {
			e.log.Warn("finish batch", "batch_id", batchID, "error", err.Error())
		}
		return
	}
	if err := e.store.Tx(ctx, func(ctx context.Context) error { return e.reportHeldBatch(ctx, b, st, now) }); err != nil {
		e.log.Warn("report held batch", "batch_id", batchID, "error", err.Error())
	}
	err = e.store.Tx(ctx, func(ctx context.Context) error {
		won, err := e.store.MarkBatchProgress(ctx, b.ID, now, batchProgressEvery)
		if err != nil || !won {
			return err
		}
		_, err = e.events.Append(ctx, models.NewEvent{
			AccountID: b.AccountID, Type: models.EventBatchProgress, Severity: models.SeverityInfo,
			Message: fmt.Sprintf("%s: %d of %d done%s", scopeLabel(b), st.Succeeded+st.Failed+st.Cancelled, b.Total-b.Skipped, kindNote(b.Kind)), Data: data,
		})
		return err
	})
	if err != nil {
		e.log.Warn("batch progress", "batch_id", batchID, "error", err.Error())
	}
}

// reportHeldBatch mails the batch's report e-mails, once, when every run
// it has left waits for a person, in the transaction carried by ctx:
// rather than leave a held batch unnoticed until someone looks.
func (e *Engine) reportHeldBatch(ctx context.Context, b models.Batch, st BatchStatus, now time.Time) error {
	if !b.Expanded || b.HeldReportedAt != nil || st.Held == 0 || st.Queued > 0 || st.Running > st.Held {
		return nil
	}
	won, err := e.store.MarkBatchHeldReported(ctx, b.ID, now)
	if err != nil || !won {
		return err
	}
	return e.reportBatch(ctx, b, st)
}

// sweepBatches finishes batches whose last run ended somewhere that did
// not report it (a node that stopped).
func (e *Engine) sweepBatches(ctx context.Context) {
	batches, err := e.store.UnfinishedBatches(ctx, 50)
	if err != nil {
		return
	}
	for _, b := range batches {
		e.batchChanged(ctx, b.ID)
	}
}

// kindNote names a batch's kind at the end of its messages, such as
// " (user sync)", since several batches of an account may run at once.
func kindNote(k models.RunKind) string {
	return " (" + strings.ToLower(kindLabel(k)) + ")"
}

// lowerFirst lowers a label's first letter to use it inside a sentence,
// leaving a group's name as it is.
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func scopeLabel(b models.Batch) string {
	switch b.Scope {
	case models.ScopeGroup:
		return "Group " + b.GroupName
	case models.ScopeLocations:
		return "Selected locations"
	}
	return "All locations"
}

// batchName is how a person recognises a batch, such as "User sync of
// group North".
func batchName(b models.Batch) string {
	switch b.Scope {
	case models.ScopeGroup:
		return kindLabel(b.Kind) + " of group " + b.GroupName
	case models.ScopeLocations:
		return kindLabel(b.Kind) + " of selected locations"
	}
	return kindLabel(b.Kind) + " of all locations"
}

// batchSummary is the finished batch's message, such as "All locations:
// 47 succeeded, 3 failed".
func batchSummary(b models.Batch, st BatchStatus) string {
	parts := []string{fmt.Sprintf("%d succeeded", st.Succeeded)}
	if st.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", st.Failed))
	}
	if st.Cancelled > 0 {
		parts = append(parts, fmt.Sprintf("%d cancelled", st.Cancelled))
	}
	if b.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d already syncing", b.Skipped))
	}
	return scopeLabel(b) + ": " + strings.Join(parts, ", ")
}
