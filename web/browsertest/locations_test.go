package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/panelsync/panelsync/app"
)

// locationRow finds a location's section on the Locations page by the
// location's name.
func locationRow(name string) chromedp.JSPath {
	return onPage().named("section.location", name)
}

// rowIs is an expression true when the location's row shows the sync
// status and panel connection the API reports.
func rowIs(name, status, connection string) string {
	return fmt.Sprintf(`((row) => row && row.dataset.status === %s && row.dataset.connection === %s)(%s)`,
		js(status), js(connection), locationRow(name))
}

// eventAfter is an expression true when the Events page lists an entry
// newer than offset whose message starts with prefix.
func eventAfter(offset int64, prefix string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('ol.event-list li.event')].some((li) =>
	  Number(li.dataset.offset) > %d && li.querySelector('.what')?.textContent.trim().startsWith(%s))`, offset, js(prefix))
}

func TestLocations_SyncUsers_InitiatesAndTheSuccessArrivesLiveOnEvents(t *testing.T) {
	s := startSite(t, func(c *app.Config) {
		// The panel below holds its answer while the test opens the
		// Events page, then answers a retry: attempts time out
		// quickly, and there are enough of them to outlast a slow
		// page load.
		c.CommandTimeout = time.Second
		c.MaxAttempts = 10
	})
	s.location(t, "Harbor Office")
	store, storePanel := s.location(t, "Main Street Store")
	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)

	b.waitFor("both locations synced and connected",
		rowIs("Harbor Office", "ok", "connected")+" && "+rowIs("Main Street Store", "ok", "connected"))
	b.screenshots("locations")

	row := within(locationRow(store.Name))
	summary := row.css("button.location-summary")
	if got := evaluate[string](b, fmt.Sprintf(`%s?.getAttribute('aria-expanded')`, summary)); got != "false" {
		b.fail("the location starts with aria-expanded=%q, want false", got)
	}
	b.click("the location's summary", summary)
	b.waitFor("the location's detail to open", fmt.Sprintf(`%s?.getAttribute('aria-expanded') === 'true'`, summary))
	for _, name := range []string{"SYNC USERS", "SYNC PANEL", "REFRESH"} {
		b.waitFor(name+" in the location's detail", present(row.button(name)))
	}
	b.screenshots("location-detail")

	// The panel keeps the sync waiting until the Events page is open, so
	// that its outcome can only arrive there live.
	storePanel.SetUnresponsive(true)
	before := s.lastOffset(t)
	b.click("SYNC USERS", row.button("SYNC USERS"))
	b.waitFor("the sync to be acknowledged",
		fmt.Sprintf(`%s?.textContent.includes('User sync process has been initiated')`, row.css(".sync-outcome")))
	b.screenshots("location-sync-initiated")

	b.click("Go to Events", row.link("Go to Events"))
	b.waitFor("the Events page", `location.hash.startsWith('#/events') && document.querySelector('ol.event-list li.event')`)
	if evaluate[bool](b, eventAfter(before, "User sync succeeded")) {
		b.fail("the Events page shows a user sync success before the panel answered")
	}
	storePanel.SetUnresponsive(false)
	b.waitFor("the user sync's success to arrive live", eventAfter(before, "User sync succeeded"))
	b.screenshots("events-user-sync")
}

func TestLocations_PanelStopsAnswering_TurnsToSyncFailureWithoutReload(t *testing.T) {
	s := startSite(t, func(c *app.Config) {
		c.CommandTimeout = time.Second
		c.MaxAttempts = 2
	})
	warehouse, warehousePanel := s.location(t, "Warehouse")
	s.location(t, "Depot")
	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)
	b.waitFor("both locations synced", rowIs("Warehouse", "ok", "connected")+" && "+rowIs("Depot", "ok", "connected"))
	// A mark on the page's window survives anything but a reload.
	evaluate[bool](b, `window.stillTheSamePage = true`)

	// The panel stops answering; someone's phone asks for a sync.
	warehousePanel.SetUnresponsive(true)
	s.node.Sync(t, s.token, warehouse.ID, "users")

	b.waitFor("the Warehouse to show Sync Failure", fmt.Sprintf(`((row) => row?.dataset.status === 'sync_failure' &&
	  row.querySelector('button.location-summary')?.textContent.includes('Sync Failure'))(%s)`, locationRow("Warehouse")))
	// The row says why, in the words the API gives for the failure.
	r := s.node.Do(t, "GET", "/v1/locations/"+warehouse.ID, s.token, nil)
	var loc struct {
		Sync struct {
			LastFailure *struct {
				Message string `json:"message"`
			} `json:"last_failure"`
		} `json:"sync"`
	}
	r.JSON(t, &loc)
	if loc.Sync.LastFailure == nil || loc.Sync.LastFailure.Message == "" {
		t.Fatalf("the location in Sync Failure has no last_failure: %s", r.Body)
	}
	b.waitFor("the reason for the Sync Failure", fmt.Sprintf(`%s?.textContent.includes(%s)`,
		within(locationRow("Warehouse")).css(".sync-failure-message"), js(loc.Sync.LastFailure.Message)))
	if !evaluate[bool](b, `window.stillTheSamePage === true`) {
		b.fail("the page was reloaded to show the Sync Failure")
	}
	if !evaluate[bool](b, rowIs("Depot", "ok", "connected")) {
		b.fail("the Depot, whose panel answers, no longer shows OK")
	}
	b.screenshots("locations-sync-failure")
}
