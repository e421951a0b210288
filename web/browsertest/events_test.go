package browsertest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// feedLive is an expression true when the page says its Event Log feed
// is live.
const feedLive = `document.querySelector('.feed-status')?.textContent.trim() === 'Live'`

// shownOffsets is an expression giving the offsets of the entries on the
// Events page, top to bottom.
const shownOffsets = `[...document.querySelectorAll('ol.event-list li.event')].map((li) => Number(li.dataset.offset))`

// showsUpTo is an expression true when the Events page shows the entry
// at offset, the newest.
func showsUpTo(offset int64) string {
	return fmt.Sprintf(`((offsets) => offsets.length > 0 && Math.max(...offsets) === %d)(%s)`, offset, shownOffsets)
}

func TestEvents_SocketCut_ShowsEveryEventOnceWithNoGap(t *testing.T) {
	s := startSite(t, nil)
	harbor, harborPanel := s.location(t, "Harbor Office")
	depot, _ := s.location(t, "Depot")
	// The browser reaches the node only through the proxy, so cutting
	// the proxy's connections is the network failing under the page.
	proxy := startProxy(t, strings.TrimPrefix(s.node.BaseURL, "http://"))
	b := openBrowser(t, proxy.URL())
	b.signIn(s)
	b.open("/events")
	b.waitFor("the Events page to go live", feedLive)

	// refresh produces entries in the Event Log: each REFRESH is
	// requested, then succeeds.
	refresh := func(locations ...models.Location) {
		t.Helper()
		for _, l := range locations {
			res := s.node.Sync(t, s.token, l.ID, "refresh")
			s.node.WaitRun(t, s.token, res.Run.ID)
		}
	}
	refresh(harbor, depot)
	b.waitFor("the refreshes to arrive", showsUpTo(s.lastOffset(t)))
	b.screenshots("events")

	proxy.cut()
	b.waitFor("the page to notice it is no longer live", "!("+feedLive+")")
	// While the page is cut off: refreshes, and an arming at the keypad.
	refresh(harbor, depot, harbor)
	if err := harborPanel.SetArmed(0, panel.ArmAway); err != nil {
		t.Fatal(err)
	}
	apptest.Eventually(t, waitLimit, func() (bool, string) {
		armed := slices.ContainsFunc(s.events(t), func(e apptest.Event) bool { return e.Type == "panel.armed" })
		return armed, "the arming at the keypad is not in the Event Log"
	})
	b.screenshots("events-reconnecting")
	proxy.restore()

	b.waitFor("the page to reconnect", feedLive)
	refresh(depot)
	newest := s.lastOffset(t)
	b.waitFor("every entry up to the newest", showsUpTo(newest))

	shown := evaluate[[]int64](b, shownOffsets)
	var want []int64
	for _, e := range s.events(t) {
		if e.Offset <= newest {
			want = append(want, e.Offset)
		}
	}
	slices.Reverse(want) // the page lists the newest first
	if !slices.Equal(shown, want) {
		b.fail("the Events page shows offsets %v; the Event Log has %v, each to be shown once, newest first", shown, want)
	}
	b.screenshots("events-after-reconnect")
}
