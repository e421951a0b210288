package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/panelsync/panelsync/models"
)

// scheduleLoop starts the users syncs that are due, until ctx ends: those
// of the locations' schedules and those that keypad changes wait for. It
// looks every schedule tick, and sooner when a keypad change falls due
// before the next tick: one reported on another node is seen at the next
// look, one reported here wakes the loop at its due time.
func (e *Engine) scheduleLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wakeAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.dueWake:
			if due := e.takeNotedDue(); !due.IsZero() && due.Before(wakeAt) {
				wakeAt = due
				timer.Reset(due.Sub(e.now()))
			}
			continue
		case <-timer.C:
		}
		okSchedules := e.runDue(ctx, "scheduled syncs", e.RunDueSchedules)
		okChanges := e.runDue(ctx, "keypad change syncs", e.RunDueUsersChanges)
		wait := e.nextScheduleWake(ctx)
		if !okSchedules || !okChanges {
			// A pass that failed (the database busy or away for a moment)
			// is tried again soon: the due times it missed are already in
			// the past, so the next look would otherwise be a whole tick
			// away.
			wait = min(wait, scheduleRetry)
		}
		wakeAt = e.now().Add(wait)
		timer.Reset(wait)
	}
}

// scheduleRetry is how soon the schedule loop looks again after a pass
// failed.
const scheduleRetry = time.Second

// noteDue tells the schedule loop of a keypad change due at due, so that
// it wakes then rather than at its next tick.
func (e *Engine) noteDue(due time.Time) {
	e.dueMu.Lock()
	if e.notedDue.IsZero() || due.Before(e.notedDue) {
		e.notedDue = due
	}
	e.dueMu.Unlock()
	select {
	case e.dueWake <- struct{}{}:
	default:
	}
}

// takeNotedDue returns the earliest due time noted since the last call, or
// the zero time.
func (e *Engine) takeNotedDue() time.Time {
	e.dueMu.Lock()
	defer e.dueMu.Unlock()
	due := e.notedDue
	e.notedDue = time.Time{}
	return due
}

// runDue runs pass until it finds less than a chunk to do, and reports
// whether every pass succeeded.
func (e *Engine) runDue(ctx context.Context, what string, pass func(context.Context) (int, error)) bool {
	for {
		n, err := pass(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error(what, "error", err.Error())
		}
		if err != nil {
			return false
		}
		if n < scheduleChunk {
			return true
		}
	}
}

// nextScheduleWake is how long the schedule loop sleeps: one tick, or less
// when a keypad change falls due before then.
func (e *Engine) nextScheduleWake(ctx context.Context) time.Duration {
	now := e.now()
	wait := e.cfg.ScheduleTick
	due, err := e.store.NextUsersChangeDue(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("find the next keypad change", "error", err.Error())
		}
		return wait
	}
	if !due.IsZero() && due.Sub(now) < wait {
		wait = due.Sub(now)
	}
	return wait
}

const scheduleChunk = 200

// RunDueSchedules starts a users sync at up to one chunk of locations whose
// schedule is due, and moves each one's next time to one interval from
// now, jittered. A node that was down runs a missed schedule once, not
// once per missed interval, and two nodes never take the same location.
// The query reads the due locations by index, so its cost follows them,
// not the number of locations.
func (e *Engine) RunDueSchedules(ctx context.Context) (int, error) {
	now := e.now()
	return e.store.ClaimDueSchedules(ctx, now, scheduleChunk, func(l models.Location) time.Time {
		return nextSchedule(now, l.SyncIntervalMinutes)
	}, func(ctx context.Context, v models.LocationView) error {
		actor := systemActor(actorSchedule, v.Location.AccountID)
		_, _, err := e.enqueueOrFail(ctx, actor, v, SyncRequest{LocationID: v.Location.ID, Kind: models.RunUsers, Trigger: models.TriggerSchedule})
		return err
	})
}

// nextSchedule is one interval from now, give or take a tenth, so that
// locations created together drift apart instead of syncing together.
func nextSchedule(now time.Time, intervalMinutes int) time.Time {
	interval := time.Duration(intervalMinutes) * time.Minute
	jitter := time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10
	return now.Add(interval + jitter)
}

// PanelCheckedIn starts the full users sync a location was flagged for,
// now that its panel has checked in. The flag clears when that sync
// succeeds.
func (e *Engine) PanelCheckedIn(ctx context.Context, panelID, locationID string) {
	if !e.forced.mayBeFlagged(locationID) {
		return
	}
	marks, err := e.store.LocationSyncMarks(ctx, locationID)
	if err != nil {
		return
	}
	if !marks.ForcePending {
		e.forced.remove(locationID)
		return
	}
	loc, err := e.store.LocationByID(ctx, locationID)
	if err != nil {
		return
	}
	actor := systemActor(actorCheckin, loc.Location.AccountID)
	if _, _, err := e.RequestSync(ctx, actor, SyncRequest{LocationID: locationID, Kind: models.RunUsers, Trigger: models.TriggerCheckin}); err != nil {
		e.log.Warn("forced sync at check-in", "location_id", locationID, "error", err.Error())
	}
}

// PanelLinked starts a full users sync when a panel links to a location
// whose users have never synced, so that a new location has its users at
// once rather than at its first schedule, up to a day later. "Never
// synced" is what the location records: no users run has succeeded there
// (users_synced_at is null). A first sync that failed or was cancelled is
// therefore tried again at the next connection; one already queued or
// running is not started twice, and one held for apply waits for a
// person. A panel that reconnects after its users have synced starts
// nothing.
func (e *Engine) PanelLinked(ctx context.Context, panelID, locationID string) {
	// Nearly every link is a known panel reconnecting: a read of the
	// location's marks alone settles those without a lock.
	marks, err := e.store.LocationSyncMarks(ctx, locationID)
	if err != nil {
		e.log.Warn("first users sync", "location_id", locationID, "error", err.Error())
		return
	}
	if marks.UsersSyncedAt != nil {
		return
	}
	err = e.store.Tx(ctx, func(ctx context.Context) error {
		// Decided again under the panel's lock, which a succeeding users
		// run also takes before it frees its place in the queue: two
		// connections racing, or a first sync finishing meanwhile, never
		// start a second run.
		loc, err := e.store.LockPanelLocation(ctx, panelID)
		if err != nil {
			return err
		}
		if loc.Location.UsersSyncedAt != nil || checkRunnable(loc, models.RunUsers) != nil {
			return nil
		}
		actor := systemActor(actorFirstConnection, loc.Location.AccountID)
		_, _, err = e.enqueue(ctx, actor, loc, SyncRequest{LocationID: loc.Location.ID, Kind: models.RunUsers, Trigger: models.TriggerCheckin, Full: true})
		if models.ErrorCode(err) == models.CodeConflict {
			// A held users run is there: the person who decides on it
			// decides on the location's first users.
			return nil
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		e.log.Warn("first users sync", "location_id", locationID, "error", err.Error())
	}
}

// PanelUsersChanged notes that a user was changed at the panel's keypad:
// an incremental users sync of the location falls due one delay after this
// change, replacing the due time an earlier change set, so that a burst of
// edits gives one sync. The schedule loop of whichever node finds it due
// first starts it (RunDueUsersChanges); a users run queued before then
// takes the changes over.
func (e *Engine) PanelUsersChanged(ctx context.Context, panelID, locationID string) {
	due := e.now().Add(e.cfg.UserChangeDelay)
	// The change is already in the Event Log; a due time that is not
	// written would leave the location out of step with its panel until
	// its next schedule, so a write the database could not take at once
	// is tried again for a few seconds.
	var err error
	for attempt := range keypadDueAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
			}
		}
		if err = e.store.SetUsersChangeDue(ctx, locationID, due); err == nil {
			e.noteDue(due)
			return
		}
	}
	if ctx.Err() == nil {
		e.log.Error("keypad change: its sync was not scheduled", "location_id", locationID, "error", err.Error())
	}
}

// keypadDueAttempts bounds the tries at recording a keypad change's due
// time: about four seconds in all.
const keypadDueAttempts = 6

// RunDueUsersChanges starts an incremental users sync at up to one chunk
// of locations whose keypad changes are due, with trigger checkin (the
// panel's own report started it), and returns how many it started or
// found already queued. A location whose panel is not connected, or whose
// users run is held for apply or still running, is left waiting, without
// a failed run or an event: its sync starts once the panel is back, the
// held run is applied or cancelled, or the running run has ended. Nothing
// is lost meanwhile, and nothing is retried in a loop.
func (e *Engine) RunDueUsersChanges(ctx context.Context) (int, error) {
	return e.store.ClaimDueUsersChanges(ctx, e.now(), scheduleChunk, func(ctx context.Context, v models.LocationView) (bool, error) {
		if checkRunnable(v, models.RunUsers) != nil {
			return false, nil
		}
		actor := systemActor(actorKeypadChange, v.Location.AccountID)
		_, _, err := e.enqueue(ctx, actor, v, SyncRequest{LocationID: v.Location.ID, Kind: models.RunUsers, Trigger: models.TriggerCheckin})
		if models.ErrorCode(err) == models.CodeConflict {
			// Held since the claim looked: it waits like any held one.
			return false, nil
		}
		return err == nil, err
	})
}

// systemActor is the service itself acting on an account's location.
func systemActor(name, accountID string) models.Actor {
	return models.Actor{Kind: "system", Name: name, AccountID: accountID, Role: models.RoleAdmin}
}

// ForceSync flags locations for a full users sync at their panels' next
// check-in (or the next manual sync), with a sync.force_requested event
// each and an audit entry. It returns how many were newly flagged.
func (e *Engine) ForceSync(ctx context.Context, actor models.Actor, scope, group string, ids []string) (int, error) {
	if _, err := e.validateScope(ctx, actor.AccountID, scope, group, ids); err != nil {
		return 0, err
	}
	flagged := 0
	cursor := ""
	for {
		done := false
		// The cursor and the count move on only once the chunk has
		// committed: a transaction run again starts from the last commit.
		next := cursor
		var freshIDs []string
		err := e.store.Tx(ctx, func(ctx context.Context) error {
			next, freshIDs = cursor, nil
			chunk, err := e.store.ScopeChunk(ctx, actor.AccountID, scope, group, ids, cursor, 500)
			if err != nil {
				return err
			}
			done = len(chunk) < 500
			chunkIDs := make([]string, len(chunk))
			names := make(map[string]string, len(chunk))
			for i, v := range chunk {
				chunkIDs[i] = v.Location.ID
				names[v.Location.ID] = v.Location.Name
				next = v.Location.ID
			}
			if len(chunkIDs) == 0 {
				return nil
			}
			flaggedIDs, err := e.store.SetForcePending(ctx, actor.AccountID, chunkIDs)
			if err != nil {
				return err
			}
			events := make([]models.NewEvent, len(flaggedIDs))
			for i, id := range flaggedIDs {
				events[i] = models.NewEvent{
					AccountID: actor.AccountID, LocationID: id, Type: models.EventSyncForceRequested, Severity: models.SeverityInfo,
					Message: fmt.Sprintf("Full user sync requested by %s: users will sync on next check-in", actor.Name),
				}
			}
			if _, err := e.events.Append(ctx, events...); err != nil {
				return err
			}
			changes := make([]models.AuditChange, len(flaggedIDs))
			for i, id := range flaggedIDs {
				changes[i] = models.AuditChange{
					Action: "location.force_sync", Target: models.AuditTarget{Type: "location", ID: id, Name: names[id]},
					Before: map[string]any{"force_pending": false}, After: map[string]any{"force_pending": true},
				}
			}
			if err := e.store.AuditAll(ctx, actor, changes); err != nil {
				return err
			}
			freshIDs = flaggedIDs
			return nil
		})
		if err != nil {
			return flagged, err
		}
		e.forced.add(freshIDs, time.Now())
		cursor = next
		flagged += len(freshIDs)
		if done {
			return flagged, nil
		}
	}
}
