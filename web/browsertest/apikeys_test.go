package browsertest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestAPIKeys_Create_ShowsTheSecretOnceOnly(t *testing.T) {
	s := startSite(t, nil)
	b := openBrowser(t, s.node.BaseURL)
	b.signIn(s)

	b.open("/api-keys")
	b.waitFor("the API keys page", heading("API keys")+" && "+present(onPage().button("Create API key…")))
	b.screenshots("api-keys")

	b.click("Create API key…", onPage().button("Create API key…"))
	b.waitFor("the new key's form", `document.querySelector('dialog[open]') && `+present(onPage().control("Name")))
	b.typeInto("Name", onPage().control("Name"), "Nightly user import")
	for _, scope := range []string{"Read", "Sync"} {
		box := onPage().control(scope)
		b.click("the "+scope+" scope", box)
		b.waitFor("the "+scope+" scope to be ticked", fmt.Sprintf(`%s?.checked === true`, box))
	}
	b.screenshots("api-key-create")
	b.click("Create key", onPage().button("Create key"))

	b.waitFor("the secret", `document.querySelector('dialog[open] .secret')?.textContent.trim().startsWith('psk_')`)
	secret := evaluate[string](b, `document.querySelector('dialog[open] .secret').textContent.trim()`)
	b.screenshots("api-key-secret")
	// What was shown is the key itself: it works against the API.
	if r := s.node.Do(t, "GET", "/v1/locations", secret, nil); r.Status != http.StatusOK {
		t.Fatalf("the secret shown does not work as a key: %d %s", r.Status, r.Body)
	}

	b.click("I have stored it", onPage().button("I have stored it"))
	b.waitFor("the key in the list", `!document.querySelector('dialog[open]') &&
	  document.querySelector('main')?.textContent.includes('Nightly user import')`)
	b.reload()
	b.waitFor("the list after the reload", heading("API keys")+` &&
	  document.querySelector('main')?.textContent.includes('Nightly user import')`)
	page := evaluate[string](b, `document.documentElement.outerHTML + JSON.stringify(sessionStorage) + JSON.stringify(localStorage)`)
	if strings.Contains(page, secret) || strings.Contains(page, strings.TrimPrefix(secret, "psk_")) {
		b.fail("after a reload, the page (or its storage) still holds the key's secret")
	}
	b.screenshots("api-keys-after-reload")
}
