package browsertest

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/panelsync/panelsync/app/apptest"
)

// mailedToken waits for the n-th mail to address in the node's outbox and
// returns the single-use token its link carries.
func (s *site) mailedToken(t *testing.T, address string, n int) string {
	t.Helper()
	link := regexp.MustCompile(`#token=(ps[a-z]_[A-Za-z0-9_-]+)`)
	var tokens []string
	apptest.Eventually(t, waitLimit, func() (bool, string) {
		tokens = nil
		files, _ := filepath.Glob(filepath.Join(s.node.App.Outbox(), "*.eml"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil || !strings.Contains(string(raw), address) {
				continue
			}
			// Quoted-printable text may break the link over lines and
			// writes "=" as "=3D".
			text := strings.NewReplacer("=\r\n", "", "=\n", "", "=3D", "=").Replace(string(raw))
			if m := link.FindStringSubmatch(text); m != nil {
				tokens = append(tokens, m[1])
			}
		}
		return len(tokens) >= n, "mails with a link to " + address + " in the outbox"
	})
	return tokens[n-1]
}

// openURL loads a path of the server as a mailed link does.
func (b *browser) openURL(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path))
}

func TestInvitation_AcceptedInTheConsole_ThenPasswordResetFromTheSignInPage(t *testing.T) {
	s := startSite(t, nil)
	s.location(t, "Harbor Office")
	const email = "riley@northwind.test"
	if r := s.node.Do(t, "POST", "/v1/logins", s.token, map[string]string{"email": email, "name": "Riley Member", "role": "member"}); r.Status != http.StatusCreated {
		t.Fatalf("invite: %d %s", r.Status, r.Body)
	}

	// The invitation's link opens the console, which asks for a password
	// and signs the new login in.
	b := openBrowser(t, s.node.BaseURL)
	b.openURL("/accept-invitation#token=" + s.mailedToken(t, email, 1))
	b.waitFor("the welcome", heading("Welcome to panelsync"))
	if evaluate[bool](b, `location.href.includes('token')`) {
		b.fail("the invitation's token stays in the address bar: %s", evaluate[string](b, `location.href`))
	}
	b.screenshots("accept-invitation")
	b.typeInto("New password", onPage().control("New password"), "riley's first pass phrase")
	b.typeInto("Repeat the new password", onPage().control("Repeat the new password"), "riley's first pass phrase")
	b.click("Accept invitation", onPage().button("Accept invitation"))
	b.waitFor("the Locations page", heading("Locations"))
	b.waitFor("Riley's name at the top", `document.querySelector('#whoami')?.textContent.includes('Riley Member')`)

	b.click("Sign out", onPage().button("Sign out"))
	b.waitFor("the sign-in page", heading("Sign in to panelsync"))

	// Forgotten password: the sign-in page mails a reset link.
	b.click("Forgot your password?", onPage().link("Forgot your password?"))
	b.waitFor("the reset form", heading("Reset your password"))
	b.typeInto("E-mail", onPage().control("E-mail"), email)
	b.click("Send reset link", onPage().button("Send reset link"))
	b.waitFor("the promise of a mail", heading("Check your e-mail"))

	b.openURL("/reset-password#token=" + s.mailedToken(t, email, 2))
	b.waitFor("the new password form", heading("Choose a new password"))
	b.typeInto("New password", onPage().control("New password"), "riley's second pass phrase")
	b.typeInto("Repeat the new password", onPage().control("Repeat the new password"), "something else")
	b.click("Save password", onPage().button("Save password"))
	b.waitFor("the mismatch said", `document.querySelector('[role=alert]:not([hidden])')?.textContent.includes('differ')`)
	b.run("clear the repeat", chromedp.Clear(onPage().control("Repeat the new password")))
	b.typeInto("Repeat the new password", onPage().control("Repeat the new password"), "riley's second pass phrase")
	b.click("Save password", onPage().button("Save password"))
	b.waitFor("the sign-in page", heading("Sign in to panelsync"))

	b.typeInto("E-mail", onPage().control("E-mail"), email)
	b.typeInto("Password", onPage().control("Password"), "riley's second pass phrase")
	b.click("Sign in", onPage().button("Sign in"))
	b.waitFor("the Locations page with the new password", heading("Locations"))
}
