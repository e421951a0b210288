package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Users changed at a panel's keypad are synced a short while after the
// last change, by whichever node's schedule loop finds them due first: the
// due time is kept on the location, so there is no timer per panel and a
// node that restarts loses nothing.

// SetUsersChangeDue records that users changed at the location's panel and
// that an incremental users sync is due at due. Each change moves the due
// time on, so a burst of edits gives one sync after the last of them.
func (s *Store) SetUsersChangeDue(ctx context.Context, locationID string, due time.Time) error {
	err := s.conn(ctx).Model(&Location{}).Where("id = ?", locationID).Update("users_change_due_at", due).Error
	if err != nil {
		return fmt.Errorf("record a keypad change: %w", err)
	}
	return nil
}

// ClaimDueUsersChanges offers up to limit locations whose keypad changes
// are due for a sync to fn, in one transaction, oldest due first, and
// returns how many fn took. A location is offered only while its panel is
// connected and no users run there is running or held for apply: a
// running run may have read the panel before the change, and a held one
// blocks every new users run until a person decides on it. Such a
// location keeps its due time and is offered once that has passed, with
// no write in the meantime. fn reports whether a users run that will read
// the panel is now queued there (its own, or one already waiting); the
// due time of those is cleared, and one fn declined stays for a later
// pass. Two nodes never take the same location: on MySQL the rows stay
// locked until commit and other nodes skip them.
func (s *Store) ClaimDueUsersChanges(ctx context.Context, now time.Time, limit int, fn func(ctx context.Context, v LocationView) (bool, error)) (int, error) {
	n := 0
	err := s.Tx(ctx, func(ctx context.Context) error {
		n = 0
		db := s.conn(ctx)
		// The users run of a location is found by its active key, through
		// that key's unique index.
		activeKey := "locations.id || ?"
		if IsMySQL(db) {
			activeKey = "CONCAT(locations.id, ?)"
		}
		q := db.Where("users_change_due_at <= ?", now).
			Where("EXISTS (SELECT 1 FROM panels WHERE panels.location_id = locations.id AND panels.connection = ?)", PanelConnected).
			Where("NOT EXISTS (SELECT 1 FROM runs WHERE runs.active_key = "+activeKey+" AND runs.state IN ?)",
				ActiveKey("", RunUsers), []RunState{RunRunning, RunAwaitingApply}).
			Order("users_change_due_at").Limit(limit)
		if IsMySQL(db) {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var locs []Location
		if err := q.Find(&locs).Error; err != nil {
			return fmt.Errorf("find due keypad changes: %w", err)
		}
		views, err := s.withPanels(ctx, locs)
		if err != nil {
			return err
		}
		for _, v := range views {
			took, err := fn(ctx, v)
			if err != nil {
				return err
			}
			if !took {
				continue
			}
			if err := db.Model(&Location{}).Where("id = ?", v.Location.ID).Update("users_change_due_at", nil).Error; err != nil {
				return fmt.Errorf("clear a keypad change: %w", err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// NextUsersChangeDue returns the earliest keypad-change due time later
// than after, or the zero time when there is none. Due times already
// passed are left out: their locations wait for their panel or for a
// person, and the schedule loop must not spin on them.
func (s *Store) NextUsersChangeDue(ctx context.Context, after time.Time) (time.Time, error) {
	var loc Location
	err := s.conn(ctx).Select("users_change_due_at").Where("users_change_due_at > ?", after).
		Order("users_change_due_at").Limit(1).Take(&loc).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("find the next keypad change: %w", err)
	case loc.UsersChangeDueAt == nil:
		return time.Time{}, nil
	}
	return *loc.UsersChangeDueAt, nil
}

// LockPanelLocation loads the location of a panel, with the panel, and
// locks the panel's row until the transaction in ctx ends. A users run
// that succeeds writes the panel's watermark before it frees its place in
// the queue, in one transaction, so a caller holding this lock sees that
// run either finished (users_synced_at set) or still in its place, never a
// moment in between.
func (s *Store) LockPanelLocation(ctx context.Context, panelID string) (LocationView, error) {
	var v LocationView
	if err := lockForUpdate(s.conn(ctx)).Where("id = ?", panelID).Take(&v.Panel).Error; err != nil {
		return LocationView{}, notFound(err, "panel")
	}
	if err := s.conn(ctx).Where("id = ?", v.Panel.LocationID).Take(&v.Location).Error; err != nil {
		return LocationView{}, notFound(err, "location")
	}
	return v, nil
}
