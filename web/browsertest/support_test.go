package browsertest

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// rowsWith is an expression giving how many Event Log rows read text.
func rowsWith(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('ol.event-list li.event')].filter((li) => li.textContent.includes(%s)).length`, js(text))
}

// choose picks an option of a select the way a person's choice does: the
// value changes and the page hears a change event.
func (b *browser) choose(what, label, value string) {
	b.t.Helper()
	ok := evaluate[bool](b, fmt.Sprintf(`((el) => { if (!el) return false; el.value = %s; el.dispatchEvent(new Event('change')); return el.value === %s; })(%s)`,
		js(value), js(value), onPage().control(label)))
	if !ok {
		b.fail("could not choose %q in %s", value, what)
	}
}

func TestSupportLiveLog_TwoGrantingAccounts_OneLogFilteredAndPaused(t *testing.T) {
	s := startSite(t, nil)
	harbor, _ := s.location(t, "Harbor Office")

	// A second customer, with a panel of its own.
	other, otherOwner := s.node.Account(t, "Southside Alarms")
	v, cred := s.node.Location(t, other.ID, "Southside Depot")
	s.node.Panel(t, cred, sim.Options{Users: 4})
	s.node.FirstSync(t, otherOwner, v.Location.ID)

	// Support staff, granted access by both accounts.
	staff, err := s.node.Store.StaffAccount(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const supportEmail = "sam.support@operator.test"
	if _, err := s.node.App.Auth().CreateLogin(t.Context(), staff.ID, supportEmail, "Sam Support", models.RoleSupport, apptest.Password); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{s.token, otherOwner} {
		if r := s.node.Do(t, "POST", "/v1/staff-grants", owner, map[string]any{"email": supportEmail}); r.Status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.Status, r.Body)
		}
	}

	b := openBrowser(t, s.node.BaseURL)
	b.signInAs(supportEmail, "Live log")
	b.waitFor("both granting accounts", `document.querySelector('main table')?.textContent.includes('Northwind Security') && document.querySelector('main table')?.textContent.includes('Southside Alarms')`)
	b.waitFor("the log to go live", feedLive)
	// Support staff only watch: the page offers no sync.
	if evaluate[bool](b, present(onPage().button("SYNC USERS"))) {
		b.fail("the support log offers SYNC USERS")
	}

	// Taps in each account arrive in the one log, each naming its account.
	s.node.WaitRun(t, s.token, s.node.Sync(t, s.token, harbor.ID, "refresh").Run.ID)
	s.node.WaitRun(t, otherOwner, s.node.Sync(t, otherOwner, v.Location.ID, "refresh").Run.ID)
	b.waitFor("both refreshes", fmt.Sprintf(`%s > 0 && %s > 0`, rowsWith("Harbor Office · Northwind Security"), rowsWith("Southside Depot · Southside Alarms")))
	b.screenshots("support-live-log")

	// Filtering by account leaves only that account's entries.
	b.choose("the account filter", "Account", other.ID)
	b.waitFor("only Southside's entries", fmt.Sprintf(`%s === 0 && %s > 0`, rowsWith("Northwind Security"), rowsWith("Southside Alarms")))
	b.choose("the account filter", "Account", "")

	// Paused, the log holds new entries back and says how many wait; on
	// resume they appear.
	before := evaluate[int](b, rowsWith("Harbor Office"))
	b.click("Pause", onPage().button("Pause"))
	s.node.WaitRun(t, s.token, s.node.Sync(t, s.token, harbor.ID, "refresh").Run.ID)
	b.waitFor("the waiting entries to be counted", `document.querySelector('main [role=status].muted')?.textContent.includes('wait until you resume')`)
	if now := evaluate[int](b, rowsWith("Harbor Office")); now != before {
		b.fail("the paused log showed new entries: %d rows of Harbor Office, %d before the pause", now, before)
	}
	b.screenshots("support-paused")
	b.click("Resume", onPage().button("Resume"))
	b.waitFor("the held entries after resuming", fmt.Sprintf(`%s >= %d`, rowsWith("Harbor Office"), before+2))

	// An entry's run opens in its own account, read-only.
	b.click("View run", chromedp.JSPath(`[...document.querySelectorAll('ol.event-list li.event')].find((li) => li.textContent.includes('Southside Alarms')).querySelector('a.run-link')`))
	b.waitFor("the run's page", `document.querySelector('main h1')?.textContent.includes('Southside Depot')`)
	if evaluate[bool](b, present(onPage().button("Apply"))) || evaluate[bool](b, present(onPage().button("Cancel"))) {
		b.fail("support staff are offered actions on a run")
	}
}
