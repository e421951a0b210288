package models

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// CreateImport records an upload in the caller's transaction.
func (s *Store) CreateImport(ctx context.Context, imp *Import) error {
	if imp.ID == "" {
		imp.ID = NewID()
	}
	if err := s.conn(ctx).Create(imp).Error; err != nil {
		return fmt.Errorf("record import: %w", err)
	}
	return nil
}

// Import loads one upload of the account, files included.
func (s *Store) Import(ctx context.Context, accountID, id string) (Import, error) {
	var imp Import
	if err := s.conn(ctx).Where("id = ? AND account_id = ?", id, accountID).Take(&imp).Error; err != nil {
		return Import{}, notFound(err, "import")
	}
	return imp, nil
}

// OpenRuns returns the runs of a kind still open (queued, running or held)
// at any of the locations, at most limit of them.
func (s *Store) OpenRuns(ctx context.Context, kind RunKind, locationIDs []string, limit int) ([]Run, error) {
	var open []Run
	for chunk := range slices.Chunk(locationIDs, 500) {
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = ActiveKey(id, kind)
		}
		var found []Run
		err := s.conn(ctx).Omit("data", "changes", "pending", "codes").
			Where("active_key IN ?", keys).Order("id").Limit(limit - len(open)).Find(&found).Error
		if err != nil {
			return nil, fmt.Errorf("find open runs: %w", err)
		}
		open = append(open, found...)
		if len(open) >= limit {
			break
		}
	}
	return open, nil
}

// RunWork loads a run by id with what its worker needs: the user list it
// pushes and its sealed codes.
func (s *Store) RunWork(ctx context.Context, id string) (Run, error) {
	var r Run
	if err := s.conn(ctx).Omit("changes", "pending").Where("id = ?", id).Take(&r).Error; err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// ApproveHeldRun sends a held run back to the queue with the approval that
// lets it push without the safety hold. It keeps the run's place (its
// active key), so nothing of its kind starts at the location meanwhile.
// It reports false when the run was no longer held.
func (s *Store) ApproveHeldRun(ctx context.Context, runID, approvedBy string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ?", runID, RunAwaitingApply).Updates(map[string]any{
		"state": RunQueued, "approved_by": approvedBy, "available_at": now, "lease_owner": "",
		"lease_expires_at": nil, "pending": nil, "error_code": "", "error_message": "",
		// The push is a new start: the attempts of the read that was held
		// do not count against it.
		"attempt": 0,
	})
	if res.Error != nil {
		return false, fmt.Errorf("approve held run: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// InsertRuns inserts runs in the caller's transaction, a few hundred to a
// statement. A run whose active key is taken (a run of its kind is open at
// its location) fails the whole insert with a conflict.
func (s *Store) InsertRuns(ctx context.Context, runs []Run) error {
	if len(runs) == 0 {
		return nil
	}
	// A savepoint keeps a duplicate-key failure from poisoning the
	// caller's transaction on databases that abort it on error.
	err := s.conn(ctx).Transaction(func(tx *gorm.DB) error { return tx.CreateInBatches(runs, 100).Error })
	if isDuplicate(err) {
		return Errorf(CodeConflict, "a run of that kind is already open at one of the locations")
	}
	if err != nil {
		return fmt.Errorf("insert runs: %w", err)
	}
	return nil
}

// MarkLocationsSyncing shows locations as syncing once runs of kind are
// queued there, in statements of a few hundred locations.
func (s *Store) MarkLocationsSyncing(ctx context.Context, locationIDs []string, kind RunKind) error {
	updates := map[string]any{"sync_status": SyncSyncing}
	if kind == RunUsers {
		updates["users_change_due_at"] = nil
	}
	for ids := range slices.Chunk(locationIDs, 500) {
		if err := s.conn(ctx).Model(&Location{}).Where("id IN ?", ids).Updates(updates).Error; err != nil {
			return fmt.Errorf("mark locations syncing: %w", err)
		}
	}
	return nil
}

// LatestImportData returns the user list of the newest upload run at a
// location that has one, or nil: what its control file protected applies
// to whatever else is pushed there.
func (s *Store) LatestImportData(ctx context.Context, locationID string) ([]byte, error) {
	var r Run
	res := s.conn(ctx).Select("data").Where("location_id = ? AND kind = ? AND import_id IS NOT NULL", locationID, RunImport).
		Order("id DESC").Limit(1).Find(&r)
	if res.Error != nil {
		return nil, fmt.Errorf("find latest import: %w", res.Error)
	}
	return r.Data, nil
}
