package browsertest

import (
	"fmt"
	"testing"
)

func TestUsers_SyncAllLocations_ShowsProgressSummaryAndTheFinishedBatchOnEvents(t *testing.T) {
	s := startSite(t, nil)
	harbor, _ := s.location(t, "Harbor Office")
	s.location(t, "Main Street Store")
	s.location(t, "Depot")
	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)

	b.open("/locations/" + harbor.ID + "/users")
	b.waitFor("the Users page with the panel's 8 users",
		`document.querySelector('main h1')?.textContent.startsWith('Users') && document.querySelectorAll('main table tbody tr').length === 8`)
	sync := onPage().button("SYNC USERS…")
	// The button sits at the upper right: in the page's header, on the
	// right half of a desktop-wide page.
	placed := evaluate[bool](b, fmt.Sprintf(`((el) => Boolean(el && el.closest('.page-header') &&
	  el.getBoundingClientRect().left > window.innerWidth / 2))(%s)`, sync))
	if !placed {
		b.fail("the SYNC USERS… button is not at the upper right of the Users page")
	}
	b.screenshots("users")

	b.click("SYNC USERS…", sync)
	b.waitFor("the sync dialog", `document.querySelector('dialog[open]')`)
	allLocations := onPage().labelStarting("input[type=radio]", "All Locations")
	b.waitFor("the All Locations choice", present(allLocations))
	b.waitFor("the This location only choice", present(onPage().labelStarting("input[type=radio]", "This location only")))
	b.waitFor("the Start sync button", present(onPage().button("Start sync")))
	b.screenshots("users-sync-dialog")
	b.click("All Locations", allLocations)
	b.waitFor("All Locations to be chosen", fmt.Sprintf(`%s?.checked === true`, allLocations))
	b.click("Start sync", onPage().button("Start sync"))

	b.waitFor("the batch's message, progress and GO TO EVENTS",
		`!document.querySelector('dialog[open]') && document.querySelector('main progress') && `+present(onPage().button("GO TO EVENTS")))
	b.waitFor("the batch's summary", `document.querySelector('main')?.textContent.includes('3 succeeded')`)
	b.screenshots("users-batch-finished")

	b.click("GO TO EVENTS", onPage().button("GO TO EVENTS"))
	b.waitFor("the finished batch on the Events page", `location.hash.startsWith('#/events') &&
	  [...document.querySelectorAll('ol.event-list li.event .what')].some((el) => el.textContent.trim().startsWith('All locations: 3 succeeded'))`)
	b.screenshots("events-batch-finished")
}
