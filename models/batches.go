package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Batch states.
const (
	BatchRunning = "running"
	BatchDone    = "done"
)

// Batch scopes.
const (
	ScopeAll       = "all"
	ScopeGroup     = "group"
	ScopeLocations = "locations"
)

// ScopeQuery selects the locations of a scope, ordered by id so a batch
// can be expanded in chunks and resumed from a cursor.
func (s *Store) ScopeQuery(ctx context.Context, accountID, scope, group string, ids []string) *gorm.DB {
	q := s.conn(ctx).Model(&Location{}).Where("account_id = ?", accountID)
	switch scope {
	case ScopeGroup:
		q = q.Where("group_name = ?", group)
	case ScopeLocations:
		q = q.Where("id IN ?", ids)
	}
	return q
}

// CountScope counts the locations of a scope.
func (s *Store) CountScope(ctx context.Context, accountID, scope, group string, ids []string) (int, error) {
	var n int64
	if err := s.ScopeQuery(ctx, accountID, scope, group, ids).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count locations: %w", err)
	}
	return int(n), nil
}

// ScopeChunk returns up to limit locations of the scope after cursor, with
// their panels.
func (s *Store) ScopeChunk(ctx context.Context, accountID, scope, group string, ids []string, cursor string, limit int) ([]LocationView, error) {
	var locs []Location
	err := s.ScopeQuery(ctx, accountID, scope, group, ids).Where("id > ?", cursor).Order("id").Limit(limit).Find(&locs).Error
	if err != nil {
		return nil, fmt.Errorf("load locations: %w", err)
	}
	return s.withPanels(ctx, locs)
}

// CreateBatch inserts a batch, setting its timestamps.
func (s *Store) CreateBatch(ctx context.Context, b *Batch) error {
	if err := s.conn(ctx).Create(b).Error; err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	return nil
}

// Batch loads one batch of the account.
func (s *Store) Batch(ctx context.Context, accountID, id string) (Batch, error) {
	var b Batch
	if err := s.conn(ctx).Where("id = ? AND account_id = ?", id, accountID).Take(&b).Error; err != nil {
		return Batch{}, notFound(err, "batch")
	}
	return b, nil
}

// BatchQuery selects a page of an account's batches, newest first.
type BatchQuery struct {
	AccountID string
	// Before is the id of the last batch of the previous page.
	Before string
	Limit  int
}

// ListBatches returns a page of batches, newest first, and the cursor of
// the next page (empty on the last). Ids are time-ordered, so paging by id
// is paging by creation.
func (s *Store) ListBatches(ctx context.Context, q BatchQuery) ([]Batch, string, error) {
	db := s.conn(ctx).Where("account_id = ?", q.AccountID)
	if q.Before != "" {
		db = db.Where("id < ?", q.Before)
	}
	var batches []Batch
	if err := db.Order("id DESC").Limit(q.Limit + 1).Find(&batches).Error; err != nil {
		return nil, "", fmt.Errorf("list batches: %w", err)
	}
	next := ""
	if len(batches) > q.Limit {
		batches = batches[:q.Limit]
		next = batches[len(batches)-1].ID
	}
	return batches, next, nil
}

// BatchByID loads a batch by id alone, for the workers.
func (s *Store) BatchByID(ctx context.Context, id string) (Batch, error) {
	var b Batch
	if err := s.conn(ctx).Where("id = ?", id).Take(&b).Error; err != nil {
		return Batch{}, notFound(err, "batch")
	}
	return b, nil
}

// ClaimBatchExpansion takes one batch whose runs are not all created yet
// and whose expansion lease is free, for owner until leaseUntil.
func (s *Store) ClaimBatchExpansion(ctx context.Context, owner string, now, leaseUntil time.Time) (Batch, bool, error) {
	var b Batch
	found := false
	err := s.Tx(ctx, func(ctx context.Context) error {
		// Reset, or a second attempt's Find would add the first one's
		// primary key to its conditions.
		b, found = Batch{}, false
		db := s.conn(ctx)
		q := db.Where("expanded = ? AND cancelled_at IS NULL AND (expand_lease IS NULL OR expand_lease < ?)", false, now).Order("created_at").Limit(1)
		if IsMySQL(db) {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		res := q.Find(&b)
		if res.Error != nil {
			return fmt.Errorf("find batch to expand: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		found = true
		return db.Model(&Batch{}).Where("id = ?", b.ID).Updates(map[string]any{"expand_owner": owner, "expand_lease": leaseUntil}).Error
	})
	return b, found, err
}

// AdvanceBatchExpansion records how far expansion got, guarded by the
// owner's lease. It reports false when the batch is no longer this
// owner's to expand.
func (s *Store) AdvanceBatchExpansion(ctx context.Context, id, owner, cursor string, skipped int, done bool, leaseUntil time.Time) (bool, error) {
	// A cancelled batch creates no more runs: the guard fails and the
	// chunk that was being added rolls back.
	res := s.conn(ctx).Model(&Batch{}).Where("id = ? AND expand_owner = ? AND expanded = ? AND cancelled_at IS NULL", id, owner, false).Updates(map[string]any{
		"expand_cursor": cursor,
		"skipped":       gorm.Expr("skipped + ?", skipped),
		"expanded":      done,
		"expand_lease":  leaseUntil,
	})
	if res.Error != nil {
		return false, fmt.Errorf("advance batch: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// BatchCounts counts a batch's runs by state.
func (s *Store) BatchCounts(ctx context.Context, batchID string) (map[RunState]int, error) {
	counts, err := s.BatchCountsOf(ctx, []string{batchID})
	if err != nil {
		return nil, err
	}
	return counts[batchID], nil
}

// BatchCountsOf counts the runs of several batches by state, in one query:
// a page of batches costs one count, not one per batch. Every batch asked
// for has an entry, empty when it has no runs yet.
func (s *Store) BatchCountsOf(ctx context.Context, batchIDs []string) (map[string]map[RunState]int, error) {
	out := make(map[string]map[RunState]int, len(batchIDs))
	for _, id := range batchIDs {
		out[id] = map[RunState]int{}
	}
	if len(batchIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		BatchID string
		State   RunState
		N       int
	}
	err := s.conn(ctx).Model(&Run{}).Select("batch_id, state, COUNT(*) AS n").
		Where("batch_id IN ?", batchIDs).Group("batch_id, state").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count batch runs: %w", err)
	}
	for _, r := range rows {
		out[r.BatchID][r.State] = r.N
	}
	return out, nil
}

// MarkBatchProgress takes the right to report progress now: at most once
// per interval, across nodes.
func (s *Store) MarkBatchProgress(ctx context.Context, id string, now time.Time, interval time.Duration) (bool, error) {
	res := s.conn(ctx).Model(&Batch{}).
		Where("id = ? AND finished_at IS NULL AND (progress_at IS NULL OR progress_at <= ?)", id, now.Add(-interval)).
		Update("progress_at", now)
	return res.RowsAffected == 1, res.Error
}

// FinishBatch marks a batch done, once: only the caller that flips it
// reports the summary.
func (s *Store) FinishBatch(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Batch{}).Where("id = ? AND finished_at IS NULL", id).
		Updates(map[string]any{"finished_at": now, "state": BatchDone})
	return res.RowsAffected == 1, res.Error
}

// UnfinishedBatches lists batches whose runs are all created but that are
// not marked done, for the sweep that finishes them.
func (s *Store) UnfinishedBatches(ctx context.Context, limit int) ([]Batch, error) {
	var out []Batch
	err := s.conn(ctx).Where("finished_at IS NULL AND (expanded = ? OR cancelled_at IS NOT NULL)", true).Order("created_at").Limit(limit).Find(&out).Error
	return out, err
}

// CancelBatch stops a batch: no more runs are created and its queued runs
// are cancelled. It returns the runs it cancelled, so that each gets its
// sync.cancelled event in the same transaction.
func (s *Store) CancelBatch(ctx context.Context, accountID, id string, now time.Time) (Batch, []Run, error) {
	var (
		b         Batch
		cancelled []Run
	)
	err := s.Tx(ctx, func(ctx context.Context) error {
		cancelled = nil
		var err error
		b, err = s.Batch(ctx, accountID, id)
		if err != nil {
			return err
		}
		if b.FinishedAt != nil || b.CancelledAt != nil {
			return Errorf(CodeConflict, "the batch has already %s", map[bool]string{true: "finished", false: "been cancelled"}[b.FinishedAt != nil])
		}
		db := s.conn(ctx)
		if err := db.Model(&Batch{}).Where("id = ?", id).Update("cancelled_at", now).Error; err != nil {
			return err
		}
		// Locked, so a worker cannot claim one between this read and the
		// update (claims skip locked rows).
		if err := lockForUpdate(db).Select("id", "account_id", "location_id", "kind", "trigger_source").
			Where("batch_id = ? AND state = ?", id, RunQueued).Find(&cancelled).Error; err != nil {
			return err
		}
		if err := db.Model(&Run{}).Where("batch_id = ? AND state = ?", id, RunQueued).Updates(map[string]any{
			"state": RunCancelled, "active_key": nil, "finished_at": now,
		}).Error; err != nil {
			return fmt.Errorf("cancel batch runs: %w", err)
		}
		for _, r := range cancelled {
			if err := s.RefreshSyncStatus(ctx, r.LocationID); err != nil {
				return err
			}
		}
		b.CancelledAt = &now
		return nil
	})
	return b, cancelled, err
}

// InsertFailedRun records a run that could not start (the panel is away,
// its credential expired, it is armed) as failed at once.
func (s *Store) InsertFailedRun(ctx context.Context, r Run) (Run, error) {
	r.State = RunFailed
	if r.ID == "" {
		r.ID = NewID()
	}
	now := time.Now().UTC()
	r.StartedAt, r.FinishedAt = nil, &now
	if err := s.conn(ctx).Create(&r).Error; err != nil {
		return Run{}, fmt.Errorf("record failed run: %w", err)
	}
	return r, nil
}

// ClaimDueSchedules takes up to limit locations whose scheduled sync is
// due, moves each one's next time on with next, and returns them. Two
// nodes never take the same location: the rows stay locked until commit.
func (s *Store) ClaimDueSchedules(ctx context.Context, now time.Time, limit int, next func(Location) time.Time, fn func(ctx context.Context, v LocationView) error) (int, error) {
	n := 0
	err := s.Tx(ctx, func(ctx context.Context) error {
		n = 0
		db := s.conn(ctx)
		q := db.Where("next_scheduled_at <= ?", now).Order("next_scheduled_at").Limit(limit)
		if IsMySQL(db) {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var locs []Location
		if err := q.Find(&locs).Error; err != nil {
			return fmt.Errorf("find due schedules: %w", err)
		}
		views, err := s.withPanels(ctx, locs)
		if err != nil {
			return err
		}
		for _, v := range views {
			t := next(v.Location)
			if err := db.Model(&Location{}).Where("id = ?", v.Location.ID).Update("next_scheduled_at", t).Error; err != nil {
				return err
			}
			v.Location.NextScheduledAt = &t
			if err := fn(ctx, v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// SetForcePending flags locations for a full users sync at their next
// check-in, returning the ids that were not already flagged.
func (s *Store) SetForcePending(ctx context.Context, accountID string, ids []string) ([]string, error) {
	var fresh []string
	db := s.conn(ctx)
	if err := db.Model(&Location{}).Where("account_id = ? AND id IN ? AND force_pending = ?", accountID, ids, false).Pluck("id", &fresh).Error; err != nil {
		return nil, err
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	if err := db.Model(&Location{}).Where("id IN ?", fresh).Update("force_pending", true).Error; err != nil {
		return nil, fmt.Errorf("flag forced sync: %w", err)
	}
	return fresh, nil
}

// ClearForcePending clears the flag once a full users sync has succeeded.
func (s *Store) ClearForcePending(ctx context.Context, locationID string) error {
	return s.conn(ctx).Model(&Location{}).Where("id = ? AND force_pending = ?", locationID, true).Update("force_pending", false).Error
}

// ForcePendingLocations returns the ids of up to limit locations flagged
// for a full users sync at their next check-in, and whether there are more.
func (s *Store) ForcePendingLocations(ctx context.Context, limit int) ([]string, bool, error) {
	var ids []string
	err := s.conn(ctx).Model(&Location{}).Where("force_pending = ?", true).Limit(limit+1).Pluck("id", &ids).Error
	if err != nil {
		return nil, false, fmt.Errorf("list forced syncs: %w", err)
	}
	if len(ids) > limit {
		return ids[:limit], true, nil
	}
	return ids, false, nil
}

// BatchRunOutcome is one run of a batch with its location, for the
// batch's summary report.
type BatchRunOutcome struct {
	RunID        string
	State        RunState
	ErrorMessage string
	Location     Location
}

// BatchRunOutcomes lists every run of a batch with its location.
func (s *Store) BatchRunOutcomes(ctx context.Context, batchID string) ([]BatchRunOutcome, error) {
	var runs []Run
	if err := s.conn(ctx).Select("id", "state", "error_message", "location_id").Where("batch_id = ?", batchID).Find(&runs).Error; err != nil {
		return nil, fmt.Errorf("list batch runs: %w", err)
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.LocationID
	}
	byID := make(map[string]Location, len(runs))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		var locs []Location
		if err := s.conn(ctx).Where("id IN ?", chunk).Find(&locs).Error; err != nil {
			return nil, fmt.Errorf("load batch locations: %w", err)
		}
		for _, l := range locs {
			byID[l.ID] = l
		}
	}
	out := make([]BatchRunOutcome, len(runs))
	for i, r := range runs {
		out[i] = BatchRunOutcome{RunID: r.ID, State: r.State, ErrorMessage: r.ErrorMessage, Location: byID[r.LocationID]}
	}
	return out, nil
}

// MarkBatchHeldReported notes that a batch's held runs were reported. It
// reports false when they already were, so that one node mails them once.
func (s *Store) MarkBatchHeldReported(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Batch{}).Where("id = ? AND held_reported_at IS NULL", id).Update("held_reported_at", now)
	if res.Error != nil {
		return false, fmt.Errorf("mark batch held reported: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}
