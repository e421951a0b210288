package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/panelsync/panelsync/models"
)

// scheduleLoop starts the users syncs that are due, until ctx ends.
func (e *Engine) scheduleLoop(ctx context.Context) {
	tick := time.NewTicker(e.cfg.ScheduleTick)
	defer tick.Stop()
	for {
		for {
			n, err := e.RunDueSchedules(ctx)
			if err != nil && ctx.Err() == nil {
				e.log.Error("scheduled syncs", "error", err.Error())
			}
			if n < scheduleChunk || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
		actor := models.Actor{Kind: "system", Name: "schedule", AccountID: v.Location.AccountID, Role: models.RoleAdmin}
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
func (e *Engine) PanelCheckedIn(ctx context.Context, p models.Panel) {
	loc, err := e.store.LocationByID(ctx, p.LocationID)
	if err != nil || !loc.Location.ForcePending {
		return
	}
	actor := models.Actor{Kind: "system", Name: "check-in", AccountID: loc.Location.AccountID, Role: models.RoleAdmin}
	if _, _, err := e.RequestSync(ctx, actor, SyncRequest{LocationID: p.LocationID, Kind: models.RunUsers, Trigger: models.TriggerCheckin}); err != nil {
		e.log.Warn("forced sync at check-in", "location_id", p.LocationID, "error", err.Error())
	}
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
		err := e.store.Tx(ctx, func(ctx context.Context) error {
			chunk, err := e.store.ScopeChunk(ctx, actor.AccountID, scope, group, ids, cursor, 500)
			if err != nil {
				return err
			}
			done = len(chunk) < 500
			chunkIDs := make([]string, len(chunk))
			for i, v := range chunk {
				chunkIDs[i] = v.Location.ID
				cursor = v.Location.ID
			}
			if len(chunkIDs) == 0 {
				return nil
			}
			fresh, err := e.store.SetForcePending(ctx, actor.AccountID, chunkIDs)
			if err != nil {
				return err
			}
			events := make([]models.NewEvent, len(fresh))
			for i, id := range fresh {
				events[i] = models.NewEvent{
					AccountID: actor.AccountID, LocationID: id, Type: models.EventSyncForceRequested, Severity: models.SeverityInfo,
					Message: fmt.Sprintf("Full user sync requested by %s: users will sync on next check-in", actor.Name),
				}
			}
			if _, err := e.events.Append(ctx, events...); err != nil {
				return err
			}
			changes := make([]models.AuditChange, len(fresh))
			for i, id := range fresh {
				changes[i] = models.AuditChange{
					Action: "location.force_sync", Target: models.AuditTarget{Type: "location", ID: id},
					Before: map[string]any{"force_pending": false}, After: map[string]any{"force_pending": true},
				}
			}
			if err := e.store.AuditAll(ctx, actor, changes); err != nil {
				return err
			}
			flagged += len(fresh)
			return nil
		})
		if err != nil {
			return flagged, err
		}
		if done {
			return flagged, nil
		}
	}
}
