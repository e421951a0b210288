package syncer

import (
	"context"
	"sync"
	"time"
)

// A location can be flagged for a full users sync at its panel's next
// check-in, and every check-in must find out whether its location is. A
// read of the location per check-in costs the database as many reads as
// panels check in, and a fleet checking in often took the connections that
// its panels needed to link. Each node instead keeps the short list of
// flagged locations, read every forcedRefreshEvery and added to at once
// when this node flags one: a check-in whose location is not on it needs
// no read. A location flagged on another node is seen here within that
// time.

const (
	// forcedRefreshEvery is how often the list is read again.
	forcedRefreshEvery = time.Second
	// forcedListMax bounds the list a node keeps. Past it, every check-in
	// reads its location, as it would without the list.
	forcedListMax = 50_000
)

// forcedLocations is this node's list of the locations flagged for a full
// users sync at their next check-in.
type forcedLocations struct {
	mu sync.Mutex
	// known is false until the list was read, and while it is longer than
	// forcedListMax: then every location may be flagged.
	known bool
	ids   map[string]bool
	// added holds the locations this node flagged, with when, so that a
	// list read which started before they were flagged does not drop them.
	added map[string]time.Time
}

func newForcedLocations() *forcedLocations {
	return &forcedLocations{ids: map[string]bool{}, added: map[string]time.Time{}}
}

// mayBeFlagged reports whether the location may be flagged: true when it
// is on the list, or when the list is not known.
func (f *forcedLocations) mayBeFlagged(locationID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.known || f.ids[locationID]
}

// add puts locations this node has just flagged on the list.
func (f *forcedLocations) add(ids []string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.ids[id] = true
		f.added[id] = at
	}
}

// remove takes a location off the list once it was read not flagged.
func (f *forcedLocations) remove(locationID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ids, locationID)
	delete(f.added, locationID)
}

// replace sets the list to ids, read from the database by a read that
// started at readAt; complete is false when the read found more than it
// keeps. Locations this node flagged after readAt stay on it.
func (f *forcedLocations) replace(ids []string, complete bool, readAt time.Time) {
	next := make(map[string]bool, len(ids))
	for _, id := range ids {
		next[id] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, at := range f.added {
		if at.After(readAt) {
			next[id] = true
		} else {
			delete(f.added, id)
		}
	}
	f.ids = next
	f.known = complete
}

// forget marks the list unknown, so that every check-in reads its
// location until the list is read again, and reports whether it was
// known.
func (f *forcedLocations) forget() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.known
	f.known = false
	return was
}

// forcedLoop reads the list of flagged locations every forcedRefreshEvery
// until ctx ends. A read that fails leaves every check-in reading its
// location until one succeeds: a flag set meanwhile on another node must
// not be missed.
func (e *Engine) forcedLoop(ctx context.Context) {
	tick := time.NewTicker(forcedRefreshEvery)
	defer tick.Stop()
	for {
		e.refreshForced(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (e *Engine) refreshForced(ctx context.Context) {
	readAt := time.Now()
	ids, more, err := e.store.ForcePendingLocations(ctx, forcedListMax)
	if err != nil {
		if e.forced.forget() && ctx.Err() == nil {
			e.log.Warn("read the locations flagged for a forced sync; every check-in reads its location meanwhile", "error", err.Error())
		}
		return
	}
	e.forced.replace(ids, !more, readAt)
}
