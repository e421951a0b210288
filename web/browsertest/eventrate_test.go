package browsertest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

// TestEvents_AHundredEventsASecond_PageShowsEachOnce writes Event Log
// entries at 100 a second through the server's one event writer (commit,
// publish, realtime hub, socket) while the Events page is open, and checks
// that the page shows every one of them once, newest first, and never
// keeps more than its bound of rows. The delay from commit to row is
// logged as a figure, not asserted: speed belongs to benchmarks.
func TestEvents_AHundredEventsASecond_PageShowsEachOnce(t *testing.T) {
	const (
		rate  = 100
		total = 1200
	)
	s := startSite(t, nil)
	harbor, _ := s.location(t, "Harbor Office")
	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)
	b.open("/events")
	b.waitFor("the Events page to go live", feedLive)

	// The page's rows are timed as they appear, by the browser's clock,
	// which is this machine's.
	evaluate[bool](b, `(() => {
		window.arrivals = {};
		new MutationObserver((records) => {
			const now = Date.now();
			for (const r of records) for (const n of r.addedNodes) {
				if (n.dataset && n.dataset.offset) window.arrivals[n.dataset.offset] = now;
			}
		}).observe(document.querySelector('ol.event-list'), { childList: true });
		return true;
	})()`)

	written := map[int64]time.Time{}
	ctx := t.Context()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range total {
		<-tick.C
		evs, err := s.node.App.Events().Append(ctx, models.NewEvent{
			AccountID: s.account.ID, LocationID: harbor.ID, Type: models.EventPanelTrouble,
			Severity: models.SeverityWarning, Message: fmt.Sprintf("Zone %d tamper", i%64+1),
		})
		if err != nil {
			t.Fatal(err)
		}
		written[evs[0].Offset] = time.Now()
	}
	newest := s.lastOffset(t)
	b.waitFor("the last entry written", showsUpTo(newest))

	shown := evaluate[[]int64](b, shownOffsets)
	var want []int64
	for _, e := range s.events(t) {
		want = append(want, e.Offset)
	}
	slices.Reverse(want)
	// More entries were written than the page keeps: it holds the
	// newest thousand.
	if len(want) <= 1000 {
		t.Fatalf("only %d entries in the log; the bound on rows is not exercised", len(want))
	}
	want = want[:1000]
	if !slices.Equal(shown, want) {
		b.fail("the Events page shows %d entries; want the newest %d of the Event Log, each once, newest first", len(shown), len(want))
	}

	arrivals := evaluate[map[string]int64](b, `window.arrivals`)
	var delays []time.Duration
	for offset, at := range written {
		ms, ok := arrivals[fmt.Sprint(offset)]
		if !ok {
			b.fail("the entry at offset %d never appeared as a new row", offset)
		}
		delays = append(delays, time.UnixMilli(ms).Sub(at))
	}
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
	t.Logf("%d entries at %d/s: commit to row p50 %s, p99 %s, max %s",
		total, rate, pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}
