package syncer

import (
	"testing"
	"time"
)

// TestForcedLocations_AListReadBeforeAFlag_KeepsTheFlag: a location this
// node flags while the list is being read stays on the list the read
// brings back; one flagged before the read started is dropped once the
// read no longer finds it (its sync cleared the flag).
func TestForcedLocations_AListReadBeforeAFlag_KeepsTheFlag(t *testing.T) {
	f := newForcedLocations()
	if !f.mayBeFlagged("loc-a") {
		t.Fatal("before the list was read, a location must count as possibly flagged")
	}
	start := time.Now()
	f.add([]string{"loc-old"}, start)
	readAt := start.Add(time.Millisecond)
	f.add([]string{"loc-new"}, readAt.Add(time.Millisecond))
	f.replace([]string{"loc-b"}, true, readAt)

	for id, want := range map[string]bool{"loc-b": true, "loc-new": true, "loc-old": false, "loc-a": false} {
		if got := f.mayBeFlagged(id); got != want {
			t.Errorf("%s may be flagged: %v, want %v", id, got, want)
		}
	}
	f.remove("loc-new")
	if f.mayBeFlagged("loc-new") {
		t.Error("a location read not flagged stays on the list")
	}
}

// TestForcedLocations_AListTooLongOrNotRead_LetsEveryCheckInLook: past the
// bound, or after a read failed, every location counts as possibly
// flagged, so that no check-in misses its sync.
func TestForcedLocations_AListTooLongOrNotRead_LetsEveryCheckInLook(t *testing.T) {
	f := newForcedLocations()
	f.replace([]string{"loc-b"}, false, time.Now())
	if !f.mayBeFlagged("loc-a") {
		t.Error("with the list cut short, a location off it must count as possibly flagged")
	}
	f.replace([]string{"loc-b"}, true, time.Now())
	if f.mayBeFlagged("loc-a") {
		t.Error("with the whole list read, a location off it counts as flagged")
	}
	if !f.forget() {
		t.Error("forget reports the list was not known")
	}
	if !f.mayBeFlagged("loc-a") {
		t.Error("after a failed read, a location off the list must count as possibly flagged")
	}
}
