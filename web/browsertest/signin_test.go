package browsertest

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/panelsync/panelsync/app/apptest"
)

func TestSignIn_EmailAndPassword_OpensLocations(t *testing.T) {
	s := startSite(t, nil)
	s.location(t, "Harbor Office")
	b := openBrowser(t, s.node.BaseURL)

	// A signed-out visit to a page asks to sign in first.
	b.open("/locations")
	b.waitFor("the sign-in form", present(onPage().control("E-mail")))
	b.screenshots("signin")

	b.typeInto("E-mail", onPage().control("E-mail"), s.ownerEmail)
	b.typeInto("Password", onPage().control("Password"), "not the password")
	b.click("Sign in", onPage().button("Sign in"))
	b.waitFor("the refusal", `document.querySelector('[role=alert]:not([hidden])')?.textContent.includes('do not match')`)
	if !evaluate[bool](b, `location.hash.startsWith('#/signin')`) {
		b.fail("a wrong password left the sign-in page")
	}
	b.screenshots("signin-refused")

	b.run("clear the password", chromedp.Clear(onPage().control("Password")))
	b.typeInto("Password", onPage().control("Password"), apptest.Password)
	b.click("Sign in", onPage().button("Sign in"))
	b.waitFor("the Locations page", heading("Locations"))
	b.waitFor("the location", `document.querySelectorAll('section.location').length === 1`)
	if hash := evaluate[string](b, `location.hash`); hash != "#/locations" {
		b.fail("signed in at %s, want #/locations", hash)
	}
	b.screenshots("locations-signed-in")
}

// firstLoadBudget is the most the sign-in page may transfer, compressed,
// with everything it loads, on a first visit with an empty cache: a
// phone on a poor connection gets the console in a few seconds.
const firstLoadBudget = 200 * 1024

func TestFirstLoad_SignInPage_TransfersUnderBudget(t *testing.T) {
	s := startSite(t, nil)
	b := openBrowser(t, s.node.BaseURL)

	// Each request's URL, and what it transferred over the wire once it
	// finished: headers and the body as sent, compressed where it was.
	type transfer struct {
		url      string
		encoding string
		bytes    float64
		done     bool
	}
	var mu sync.Mutex
	requests := map[network.RequestID]*transfer{}
	err := chromedp.Listen(b.tab, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if strings.HasPrefix(ev.Request.URL, "http") {
				requests[ev.RequestID] = &transfer{url: ev.Request.URL}
			}
		case *network.EventResponseReceived:
			if r := requests[ev.RequestID]; r != nil {
				for k, v := range ev.Response.Headers {
					if strings.EqualFold(k, "Content-Encoding") {
						r.encoding = fmt.Sprint(v)
					}
				}
			}
		case *network.EventLoadingFinished:
			if r := requests[ev.RequestID]; r != nil {
				r.bytes, r.done = ev.EncodedDataLength, true
			}
		case *network.EventLoadingFailed:
			if r := requests[ev.RequestID]; r != nil {
				r.done = true
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	b.run("open the console", chromedp.Navigate(s.node.BaseURL+"/"))
	b.waitFor("the sign-in form", present(onPage().control("E-mail"))+` && document.readyState === 'complete'`)
	apptest.Eventually(t, waitLimit, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range requests {
			if !r.done {
				return false, r.url + " is still loading"
			}
		}
		return len(requests) > 0, "no request was seen"
	})

	// How long after the navigation began the page was usable, by the
	// mark the console sets when a page has rendered.
	ready := evaluate[float64](b, `performance.getEntriesByName('rendered /signin')[0]?.startTime ?? -1`)
	if ready < 0 {
		t.Errorf("the console never marked the sign-in page rendered")
	}
	t.Logf("the sign-in page was usable %.0f ms after the navigation began", ready)

	mu.Lock()
	defer mu.Unlock()
	var total float64
	var lines []string
	for _, r := range requests {
		total += r.bytes
		u, _ := url.Parse(r.url)
		enc := r.encoding
		if enc == "" {
			enc = "identity"
		}
		lines = append(lines, u.Path+" "+formatKB(r.bytes)+" ("+enc+")")
	}
	sort.Strings(lines)
	t.Logf("first load of the sign-in page: %s in %d requests\n  %s", formatKB(total), len(requests), strings.Join(lines, "\n  "))
	if total >= firstLoadBudget {
		t.Errorf("the sign-in page's first load transferred %s, over the budget of %s", formatKB(total), formatKB(firstLoadBudget))
	}
}

func formatKB(bytes float64) string {
	return fmt.Sprintf("%.1f KB", bytes/1024)
}
