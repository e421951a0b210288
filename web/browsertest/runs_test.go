package browsertest

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/panelsync/panelsync/panel/sim"
)

// badge is an expression true when the page's main content shows a badge
// reading text.
func badge(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('main .badge')].some((el) => el.textContent.trim() === %s)`, js(text))
}

func TestRun_HeldRunAppliedFromItsPage_Succeeds(t *testing.T) {
	s := startSite(t, nil)
	v, cred := s.node.Location(t, s.account.ID, "Harbor Office")
	// Automatic apply is off, so the users the panel sends on its first
	// sync wait for a person.
	r := s.node.Do(t, "PATCH", "/v1/locations/"+v.Location.ID, s.token, map[string]any{"settings": map[string]any{"auto_apply": false}})
	if r.Status != http.StatusOK {
		t.Fatalf("turn automatic apply off: %d %s", r.Status, r.Body)
	}
	s.node.Panel(t, cred, sim.Options{Users: 8})
	held := s.node.FirstSync(t, s.token, v.Location.ID)
	if held.State != "awaiting_apply" {
		t.Fatalf("the users sync is %s, want awaiting_apply", held.State)
	}

	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)
	b.open("/runs/" + held.ID)
	b.waitFor("the held run", badge("Awaiting apply")+" && "+present(onPage().button("Apply")))
	b.screenshots("run-held")

	b.click("Apply", onPage().button("Apply"))
	b.waitFor("the confirmation", `document.querySelector('dialog[open]')`)
	b.screenshots("run-apply-confirm")
	// With the dialog open, only its own buttons can be pressed.
	b.click("Apply in the confirmation", onPage().button("Apply"))
	b.waitFor("the run to succeed", `!document.querySelector('dialog[open]') && `+badge("Succeeded"))
	b.screenshots("run-applied")

	if run := s.node.WaitRun(t, s.token, held.ID); run.State != "succeeded" {
		t.Errorf("the applied run is %s, want succeeded", run.State)
	}
}
