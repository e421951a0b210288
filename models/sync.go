package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm/clause"
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

// LocationSyncMarks are the marks a location's record keeps that a panel's
// link and check-ins act on.
type LocationSyncMarks struct {
	// UsersSyncedAt is when a users run last succeeded there; nil when
	// none has.
	UsersSyncedAt *time.Time
	// ForcePending asks for a full users sync at the panel's next
	// check-in.
	ForcePending bool
}

// LocationSyncMarks reads a location's sync marks alone: it is asked on
// every link and check-in of every panel, so it reads two columns by
// primary key and nothing else.
func (s *Store) LocationSyncMarks(ctx context.Context, locationID string) (LocationSyncMarks, error) {
	var m LocationSyncMarks
	err := s.conn(ctx).Model(&Location{}).Select("users_synced_at", "force_pending").Where("id = ?", locationID).Take(&m).Error
	if err != nil {
		return LocationSyncMarks{}, notFound(err, "location")
	}
	return m, nil
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

// PanelUserName returns the name the remote copy has for user number of
// the location's panel: empty when it has none, or no such user.
func (s *Store) PanelUserName(ctx context.Context, locationID string, number int) (string, error) {
	var names []string
	err := s.conn(ctx).Model(&PanelUser{}).Where("location_id = ? AND user_number = ?", locationID, number).
		Limit(1).Pluck("name", &names).Error
	if err != nil {
		return "", fmt.Errorf("load panel user name: %w", err)
	}
	if len(names) == 0 {
		return "", nil
	}
	return names[0], nil
}

// UsersReceipt names the users a run received at a location, and which run
// and when, so that the record can say what the panel last sent for each.
type UsersReceipt struct {
	RunID   string
	At      time.Time
	Numbers []int
}

// receiptChunk is how many users one statement stamps: a 10,000-user panel
// takes 20 statements, each well inside every backend's limit on bound
// parameters.
const receiptChunk = 500

// ApplyPanelUsers writes a users sync's changes to the remote copy: rows
// to insert, rows to update (by id) and user numbers to delete. Every user
// the receipt names, changed or not, is then stamped with its run and time.
func (s *Store) ApplyPanelUsers(ctx context.Context, locationID string, insert, update []PanelUser, remove []int, received UsersReceipt) error {
	db := s.conn(ctx)
	if len(insert) > 0 {
		// A user slot linked to a login is that login's person again when
		// it comes back.
		linked, err := s.SavedLinksAt(ctx, locationID)
		if err != nil {
			return err
		}
		for i := range insert {
			if l, ok := linked[insert[i].UserNumber]; ok {
				insert[i].LoginID = &l.LoginID
			}
		}
		if err := db.CreateInBatches(insert, 500).Error; err != nil {
			return fmt.Errorf("insert panel users: %w", err)
		}
	}
	if len(update) > 0 {
		// Changed users are written back by id in a few multi-row
		// statements rather than one UPDATE each: an import that changes
		// every user of a panel would otherwise hold the write lock for
		// hundreds of statements. Every row exists, so the insert half
		// never applies; the columns not listed (the link to a login, the
		// receipt, when the user was first seen) are left alone.
		now := time.Now().UTC()
		rows := make([]PanelUser, len(update))
		for i, u := range update {
			u.CreatedAt, u.UpdatedAt = now, now
			rows[i] = u
		}
		err := db.Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "id"}},
			DoUpdates: clause.AssignmentColumns([]string{"name", "email", "external_id", "authority", "partitions",
				"access_schedule", "has_code", "code_digest", "updated_at"}),
		}).CreateInBatches(rows, 200).Error
		if err != nil {
			return fmt.Errorf("update panel users: %w", err)
		}
	}
	if len(remove) > 0 {
		if err := db.Where("location_id = ? AND user_number IN ?", locationID, remove).Delete(&PanelUser{}).Error; err != nil {
			return fmt.Errorf("delete panel users: %w", err)
		}
	}
	for numbers := range slices.Chunk(received.Numbers, receiptChunk) {
		// UpdateColumns leaves updated_at alone: it tells when a user last
		// changed, which receiving the same user again does not.
		err := db.Model(&PanelUser{}).Where("location_id = ? AND user_number IN ?", locationID, numbers).
			UpdateColumns(map[string]any{"received_at": received.At, "received_run_id": received.RunID}).Error
		if err != nil {
			return fmt.Errorf("record received panel users: %w", err)
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

// MarkLocationSyncing shows the location as syncing while a newly queued
// run of kind is under way. A users run also takes over the keypad changes
// waiting for a sync there: it reads the panel after every change reported
// so far, so the sync they were waiting for would find nothing more.
func (s *Store) MarkLocationSyncing(ctx context.Context, locationID string, kind RunKind) error {
	return s.MarkLocationsSyncing(ctx, []string{locationID}, kind)
}

// RecordRunFinished updates the location's sync summary once a run has
// finished: still syncing while other runs are active there, otherwise ok
// or sync_failure by this run's outcome, with the kind's timestamp moved
// on success.
func (s *Store) RecordRunFinished(ctx context.Context, locationID string, kind RunKind, succeeded bool, now time.Time) error {
	outcome := SyncFailure
	if succeeded {
		outcome = SyncOK
	}
	status, err := s.unsettledStatus(ctx, locationID)
	if err != nil {
		return err
	}
	if status == "" {
		status = outcome
	}
	updates := map[string]any{"sync_status": status}
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
		"state": RunCancelled, "active_key": nil, "finished_at": now, "lease_owner": "", "codes": nil,
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
		"state": RunCancelled, "active_key": nil, "finished_at": now, "lease_owner": "", "codes": nil,
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
	status, err := s.unsettledStatus(ctx, locationID)
	if err != nil {
		return err
	}
	if status == "" {
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

// unsettledStatus is a location's status while it has runs without an
// outcome: held while one awaits a person's Apply, which matters most,
// syncing while one is queued or running, and "" when none is left.
func (s *Store) unsettledStatus(ctx context.Context, locationID string) (SyncStatus, error) {
	var states []RunState
	err := s.conn(ctx).Model(&Run{}).Distinct("state").
		Where("location_id = ? AND state IN ?", locationID, []RunState{RunQueued, RunRunning, RunAwaitingApply}).
		Pluck("state", &states).Error
	if err != nil {
		return "", fmt.Errorf("find unfinished runs: %w", err)
	}
	switch {
	case slices.Contains(states, RunAwaitingApply):
		return SyncHeld, nil
	case len(states) > 0:
		return SyncSyncing, nil
	}
	return "", nil
}

// RecordRunHeld shows the location as held: a users run awaits Apply.
func (s *Store) RecordRunHeld(ctx context.Context, locationID string) error {
	return s.conn(ctx).Model(&Location{}).Where("id = ?", locationID).Update("sync_status", SyncHeld).Error
}

// HeldRunPayload loads a held run of the account with what its apply
// needs, locked for the change that follows.
func (s *Store) HeldRunPayload(ctx context.Context, accountID, id string) (Run, error) {
	var r Run
	if err := lockForUpdate(s.conn(ctx)).Where("id = ? AND account_id = ?", id, accountID).Take(&r).Error; err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// SettleHeldRun ends a held run: succeeded with what its apply changed, or
// cancelled. What it kept for the apply is wiped either way. It reports
// false when the run was no longer held.
func (s *Store) SettleHeldRun(ctx context.Context, runID string, out RunOutcome, now time.Time) (bool, error) {
	updates := map[string]any{
		"state": out.State, "active_key": nil, "finished_at": now, "pending": nil,
	}
	if out.State == RunCancelled {
		updates["codes"] = nil
	}
	if out.State == RunSucceeded {
		updates["added"], updates["updated"], updates["removed"], updates["unchanged"] = out.Added, out.Updated, out.Removed, out.Unchanged
		if out.Changes != nil {
			updates["changes"] = out.Changes
		}
	}
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ?", runID, RunAwaitingApply).Updates(updates)
	if res.Error != nil {
		return false, fmt.Errorf("settle held run: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// MarkRunCancelled ends a run in any state but a final one, whoever holds
// it: a worker still running it loses its lease and its result is refused.
// It reports false when the run had already ended.
func (s *Store) MarkRunCancelled(ctx context.Context, runID string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Run{}).
		Where("id = ? AND state IN ?", runID, []RunState{RunQueued, RunRunning, RunAwaitingApply}).
		Updates(map[string]any{"state": RunCancelled, "active_key": nil, "finished_at": now, "lease_owner": "", "pending": nil, "codes": nil})
	if res.Error != nil {
		return false, fmt.Errorf("mark run cancelled: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// SyncCause is the run a location's sync status points at: the failed run
// that put it in sync_failure, or the run awaiting Apply that holds it.
type SyncCause struct {
	LastFailure *RunFailure
	// HeldRunID is the newest run awaiting Apply there.
	HeldRunID string
}

// RunFailure is a failed run as a location's sync summary shows it.
type RunFailure struct {
	RunID   string
	Code    string
	Message string
	At      time.Time
}

// syncCauseChunk bounds the locations one SyncCauses statement covers:
// each is a term of a compound SELECT, and SQLite allows 500 terms.
const syncCauseChunk = 200

// SyncCauses finds the run behind each location's sync status: for a
// location in sync_failure its latest failed run (the latest run to finish
// decides the status, so the latest failed one is what put it there), for
// a held one its newest run awaiting Apply. A page of locations costs one
// statement, each location in it one index seek; locations in any other
// status cost nothing and have no entry.
func (s *Store) SyncCauses(ctx context.Context, locs []Location) (map[string]SyncCause, error) {
	out := map[string]SyncCause{}
	var wanted []Location
	for _, l := range locs {
		if l.SyncStatus == SyncFailure || l.SyncStatus == SyncHeld {
			wanted = append(wanted, l)
		}
	}
	for chunk := range slices.Chunk(wanted, syncCauseChunk) {
		var (
			terms []string
			args  []any
		)
		for i, l := range chunk {
			state, order := RunFailed, "finished_at DESC, id DESC"
			if l.SyncStatus == SyncHeld {
				state, order = RunAwaitingApply, "id DESC"
			}
			terms = append(terms, fmt.Sprintf("SELECT * FROM (SELECT id, location_id, state, error_code, error_message, finished_at, created_at"+
				" FROM runs WHERE location_id = ? AND state = ? ORDER BY %s LIMIT 1) AS cause%d", order, i))
			args = append(args, l.ID, state)
		}
		var rows []Run
		if err := s.conn(ctx).Raw(strings.Join(terms, " UNION ALL "), args...).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("find the runs behind sync statuses: %w", err)
		}
		for _, r := range rows {
			if r.State == RunAwaitingApply {
				out[r.LocationID] = SyncCause{HeldRunID: r.ID}
				continue
			}
			at := r.CreatedAt
			if r.FinishedAt != nil {
				at = *r.FinishedAt
			}
			out[r.LocationID] = SyncCause{LastFailure: &RunFailure{RunID: r.ID, Code: r.ErrorCode, Message: r.ErrorMessage, At: at}}
		}
	}
	return out, nil
}
