package panel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSeen records what the batch writes, and refuses while failing is
// set.
type fakeSeen struct {
	mu      sync.Mutex
	failing bool
	calls   int
	seen    map[string]time.Time
}

func (f *fakeSeen) MarkPanelsSeen(_ context.Context, panelIDs []string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failing {
		return errors.New("database is locked")
	}
	for _, id := range panelIDs {
		f.seen[id] = at
	}
	return nil
}

func (f *fakeSeen) setFailing(failing bool) {
	f.mu.Lock()
	f.failing = failing
	f.mu.Unlock()
}

func (f *fakeSeen) written() (map[string]time.Time, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]time.Time, len(f.seen))
	for id, at := range f.seen {
		out[id] = at
	}
	return out, f.calls
}

// setupLastSeen starts a batch over a fake store that flushes only when
// told to, or when batch panels wait.
func setupLastSeen(t *testing.T, batch int) (*lastSeen, *fakeSeen) {
	t.Helper()
	store := &fakeSeen{seen: map[string]time.Time{}}
	b := startLastSeen(store, slog.New(slog.DiscardHandler), time.Hour, batch)
	t.Cleanup(func() { b.close(context.Background()) })
	return b, store
}

func TestLastSeen_Flush_WritesTheLatestTimeOfEachPanelAtTheStartOfItsSecond(t *testing.T) {
	b, store := setupLastSeen(t, 1000)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	b.mark("a", t0.Add(200*time.Millisecond))
	b.mark("a", t0.Add(5*time.Second+300*time.Millisecond))
	b.mark("a", t0.Add(time.Second))
	b.mark("b", t0.Add(5*time.Second+900*time.Millisecond))
	b.flush(t.Context())

	got, calls := store.written()
	want := map[string]time.Time{"a": t0.Add(5 * time.Second), "b": t0.Add(5 * time.Second)}
	if fmt.Sprint(got) != fmt.Sprint(want) || calls != 1 {
		t.Fatalf("written %v in %d statements, want %v in one", got, calls, want)
	}
	b.flush(t.Context())
	if _, again := store.written(); again != calls {
		t.Fatal("a flush with nothing waiting wrote again")
	}
}

func TestLastSeen_FailedFlush_KeepsTheLatestTimesForTheNext(t *testing.T) {
	b, store := setupLastSeen(t, 1000)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	b.mark("a", t0)
	b.mark("b", t0)
	store.setFailing(true)
	b.flush(t.Context())
	// Seen again while the write failed: only the newer time waits.
	b.mark("a", t0.Add(3*time.Second))
	b.flush(t.Context())
	b.mu.Lock()
	waiting := len(b.waiting)
	b.mu.Unlock()
	if waiting != 2 {
		t.Fatalf("%d panels wait after two failed flushes, want 2", waiting)
	}

	store.setFailing(false)
	b.flush(t.Context())
	got, _ := store.written()
	want := map[string]time.Time{"a": t0.Add(3 * time.Second), "b": t0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("written after the database came back %v, want %v", got, want)
	}
}

func TestLastSeen_ABatchWaiting_FlushesBeforeTheTick(t *testing.T) {
	b, store := setupLastSeen(t, 3)
	now := time.Now().UTC()
	for _, id := range []string{"a", "b", "c"} {
		b.mark(id, now)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := store.written()
		if len(got) == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("written %v: a full batch waited for the hourly tick", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLastSeen_Close_WritesWhatWaits(t *testing.T) {
	store := &fakeSeen{seen: map[string]time.Time{}}
	b := startLastSeen(store, slog.New(slog.DiscardHandler), time.Hour, 1000)
	b.mark("a", time.Now().UTC())
	// A context already ended, as at a shutdown past its deadline, still
	// gets the last flush its own few seconds.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.close(ctx)
	if got, _ := store.written(); !slices.Equal(keys(got), []string{"a"}) {
		t.Fatalf("written at close %v, want panel a", got)
	}
}

func keys(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestStatusDigest_SameStateInAnyOrder_AnyChangeDiffers(t *testing.T) {
	base := func() Status {
		return Status{
			Partitions: []PartitionStatus{{Number: 1, ArmedState: ArmDisarmed, Ready: true}, {Number: 2, ArmedState: ArmAway}},
			ZoneFaults: []int{3, 7}, Troubles: []string{"tamper", "low_battery"}, ACPower: true, Battery: "ok",
		}
	}
	reordered := base()
	slices.Reverse(reordered.Partitions)
	slices.Reverse(reordered.ZoneFaults)
	slices.Reverse(reordered.Troubles)
	if statusDigest(reordered) != statusDigest(base()) {
		t.Error("the same status listed in another order has another digest")
	}
	if statusDigest(Status{}) == 0 || statusDigest(Status{}) != statusDigest(Status{Partitions: []PartitionStatus{}, ZoneFaults: []int{}, Troubles: []string{}}) {
		t.Error("an empty status's digest is 0, or differs from the same status normalized")
	}
	for name, change := range map[string]func(*Status){
		"armed state": func(s *Status) { s.Partitions[0].ArmedState = ArmStay },
		"ready":       func(s *Status) { s.Partitions[0].Ready = false },
		"zone fault":  func(s *Status) { s.ZoneFaults = append(s.ZoneFaults, 9) },
		"trouble":     func(s *Status) { s.Troubles = append(s.Troubles, "ac_failure") },
		"AC power":    func(s *Status) { s.ACPower = false },
		"battery":     func(s *Status) { s.Battery = "low" },
	} {
		changed := base()
		change(&changed)
		if statusDigest(changed) == statusDigest(base()) {
			t.Errorf("a changed %s leaves the digest as it was", name)
		}
	}
}

func TestMetrics_Checkins_CountsChangedAndUnchangedApart(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.checkin(true)
	m.checkin(false)
	m.checkin(false)
	if changed, unchanged := testutil.ToFloat64(m.checkinsChanged), testutil.ToFloat64(m.checkinsUnchanged); changed != 1 || unchanged != 2 {
		t.Fatalf("check-ins %v changed, %v unchanged; want 1 and 2", changed, unchanged)
	}
	var none *Metrics
	none.checkin(true)
}
