package models

import (
	"context"
	"fmt"
	"time"
)

// LocationByID loads a location and its panel by id alone, for workers
// acting on a run they claimed.
func (s *Store) LocationByID(ctx context.Context, id string) (LocationView, error) {
	var v LocationView
	if err := s.conn(ctx).Where("id = ?", id).Take(&v.Location).Error; err != nil {
		return LocationView{}, notFound(err, "location")
	}
	if err := s.conn(ctx).Where("location_id = ?", id).Take(&v.Panel).Error; err != nil {
		return LocationView{}, notFound(err, "panel")
	}
	return v, nil
}

// PanelUsers returns the remote copy of a location's panel users, by user
// number.
func (s *Store) PanelUsers(ctx context.Context, locationID string) ([]PanelUser, error) {
	var users []PanelUser
	if err := s.conn(ctx).Where("location_id = ?", locationID).Order("user_number").Find(&users).Error; err != nil {
		return nil, fmt.Errorf("load panel users: %w", err)
	}
	return users, nil
}

// ApplyPanelUsers writes a users sync's changes to the remote copy: rows
// to insert, rows to update (by id) and user numbers to delete.
func (s *Store) ApplyPanelUsers(ctx context.Context, locationID string, insert, update []PanelUser, remove []int) error {
	db := s.conn(ctx)
	if len(insert) > 0 {
		if err := db.CreateInBatches(insert, 500).Error; err != nil {
			return fmt.Errorf("insert panel users: %w", err)
		}
	}
	for _, u := range update {
		err := db.Model(&PanelUser{}).Where("id = ?", u.ID).Updates(map[string]any{
			"name": u.Name, "email": u.Email, "authority": u.Authority, "partitions": u.Partitions,
			"access_schedule": u.AccessSchedule, "has_code": u.HasCode, "code_digest": u.CodeDigest,
		}).Error
		if err != nil {
			return fmt.Errorf("update panel user %d: %w", u.UserNumber, err)
		}
	}
	if len(remove) > 0 {
		if err := db.Where("location_id = ? AND user_number IN ?", locationID, remove).Delete(&PanelUser{}).Error; err != nil {
			return fmt.Errorf("delete panel users: %w", err)
		}
	}
	return nil
}

// PanelConfigItems returns the remote copy of a location's panel
// configuration.
func (s *Store) PanelConfigItems(ctx context.Context, locationID string) ([]PanelConfigItem, error) {
	var items []PanelConfigItem
	if err := s.conn(ctx).Where("location_id = ?", locationID).Order("kind, number").Find(&items).Error; err != nil {
		return nil, fmt.Errorf("load panel configuration: %w", err)
	}
	return items, nil
}

// ApplyPanelConfig writes a panel sync's changes to the remote copy.
func (s *Store) ApplyPanelConfig(ctx context.Context, insert, update []PanelConfigItem, removeIDs []string) error {
	db := s.conn(ctx)
	if len(insert) > 0 {
		if err := db.CreateInBatches(insert, 500).Error; err != nil {
			return fmt.Errorf("insert configuration: %w", err)
		}
	}
	for _, it := range update {
		err := db.Model(&PanelConfigItem{}).Where("id = ?", it.ID).
			Updates(map[string]any{"name": it.Name, "type": it.Type, "partition": it.Partition}).Error
		if err != nil {
			return fmt.Errorf("update configuration: %w", err)
		}
	}
	if len(removeIDs) > 0 {
		if err := db.Where("id IN ?", removeIDs).Delete(&PanelConfigItem{}).Error; err != nil {
			return fmt.Errorf("delete configuration: %w", err)
		}
	}
	return nil
}

// SetUsersWatermark stores the panel's users watermark after a sync.
func (s *Store) SetUsersWatermark(ctx context.Context, panelID, watermark string) error {
	return s.conn(ctx).Model(&Panel{}).Where("id = ?", panelID).Update("users_watermark", watermark).Error
}

// MarkLocationSyncing shows the location as syncing while a run is under
// way.
func (s *Store) MarkLocationSyncing(ctx context.Context, locationID string) error {
	return s.conn(ctx).Model(&Location{}).Where("id = ?", locationID).Update("sync_status", SyncSyncing).Error
}

// RecordRunFinished updates the location's sync summary once a run has
// finished: still syncing while other runs are active there, otherwise ok
// or sync_failure by this run's outcome, with the kind's timestamp moved
// on success.
func (s *Store) RecordRunFinished(ctx context.Context, locationID string, kind RunKind, succeeded bool, now time.Time) error {
	active, err := s.CountActiveRuns(ctx, locationID)
	if err != nil {
		return err
	}
	updates := map[string]any{}
	switch {
	case active > 0:
		updates["sync_status"] = SyncSyncing
	case succeeded:
		updates["sync_status"] = SyncOK
	default:
		updates["sync_status"] = SyncFailure
	}
	if succeeded {
		switch kind {
		case RunUsers, RunImport:
			updates["users_synced_at"] = now
		case RunPanel:
			updates["panel_synced_at"] = now
		case RunRefresh:
			updates["refreshed_at"] = now
		}
	}
	if err := s.conn(ctx).Model(&Location{}).Where("id = ?", locationID).Updates(updates).Error; err != nil {
		return fmt.Errorf("record run on location: %w", err)
	}
	return nil
}

// CancelQueuedRun cancels a run that has not started. It reports false
// when the run was no longer queued.
func (s *Store) CancelQueuedRun(ctx context.Context, runID string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ?", runID, RunQueued).Updates(map[string]any{
		"state": RunCancelled, "active_key": nil, "finished_at": now, "lease_owner": "",
	})
	if res.Error != nil {
		return false, fmt.Errorf("cancel run: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// CancelRunningRun cancels a run a worker holds; the worker notices when
// it next renews its lease, and its result is then refused.
func (s *Store) CancelRunningRun(ctx context.Context, runID string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ?", runID, RunRunning).Updates(map[string]any{
		"state": RunCancelled, "active_key": nil, "finished_at": now, "lease_owner": "",
	})
	if res.Error != nil {
		return false, fmt.Errorf("cancel run: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RefreshSyncStatus recomputes a location's sync status after a run left
// without an outcome (cancelled): syncing while runs are active, otherwise
// what the latest finished run says, or never.
func (s *Store) RefreshSyncStatus(ctx context.Context, locationID string) error {
	active, err := s.CountActiveRuns(ctx, locationID)
	if err != nil {
		return err
	}
	status := SyncSyncing
	if active == 0 {
		var last Run
		err := s.conn(ctx).Select("state").
			Where("location_id = ? AND state IN ?", locationID, []RunState{RunSucceeded, RunFailed}).
			Order("finished_at DESC, id DESC").Limit(1).Find(&last).Error
		if err != nil {
			return fmt.Errorf("find latest run: %w", err)
		}
		switch last.State {
		case RunSucceeded:
			status = SyncOK
		case RunFailed:
			status = SyncFailure
		default:
			status = SyncNever
		}
	}
	return s.conn(ctx).Model(&Location{}).Where("id = ?", locationID).Update("sync_status", status).Error
}
