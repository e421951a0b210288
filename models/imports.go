package models

import (
	"context"
	"fmt"
	"slices"
	"time"
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
