package browsertest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
)

// accessToken is an expression giving the access token the console holds.
const accessToken = `JSON.parse(sessionStorage.getItem('panelsync.session') || '{}').access_token || ''`

func TestSession_AccessTokenExpires_ConsoleRefreshesWithoutAskingAgain(t *testing.T) {
	// The shortest lifetime the server allows, so the test sees one end.
	s := startSite(t, func(c *app.Config) { c.AccessTokenTTL = time.Minute })
	s.location(t, "Harbor Office")
	b := openBrowser(t, s.node.BaseURL)

	// Signed in with the keyboard alone: the form has focus on arrival,
	// and Enter in the password field submits it.
	b.open("/signin")
	b.waitFor("the sign-in form", present(onPage().control("E-mail")))
	if focused := evaluate[string](b, `document.activeElement?.name || ''`); focused != "email" {
		b.fail("the sign-in page put focus on %q, not the e-mail field", focused)
	}
	b.typeInto("E-mail", onPage().control("E-mail"), s.ownerEmail)
	b.typeInto("Password and Enter", onPage().control("Password"), apptest.Password+"\r")
	b.waitFor("the Locations page", heading("Locations"))
	first := evaluate[string](b, accessToken)

	apptest.Eventually(t, 2*time.Minute, func() (bool, string) {
		r := s.node.Do(t, "GET", "/v1/me", first, nil)
		return r.Status == http.StatusUnauthorized && strings.Contains(string(r.Body), `"token_expired"`),
			"the first access token still works"
	})

	// The next page the person opens works as before: the console swapped
	// its refresh token for a new pair on the way.
	b.click("Events", onPage().link("Events"))
	b.waitFor("the Events page, live", heading("Events")+" && "+feedLive)
	if now := evaluate[string](b, accessToken); now == "" || now == first {
		b.fail("the console did not renew its access token")
	}
	if evaluate[bool](b, `location.hash.startsWith('#/signin')`) {
		b.fail("an expired access token sent the person back to sign in")
	}
}
