package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models/dbtest"
)

// noCORS fails the test if r grants cross-origin access in any way.
func noCORS(t *testing.T, what string, r response) {
	t.Helper()
	for _, h := range []string{
		"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Credentials", "Access-Control-Max-Age", "Access-Control-Expose-Headers",
	} {
		if v := r.header.Get(h); v != "" {
			t.Errorf("%s: %s %q, want none", what, h, v)
		}
	}
}

func preflight(origin string) []string {
	return []string{"Origin", origin, "Access-Control-Request-Method", "PATCH", "Access-Control-Request-Headers", "authorization,content-type"}
}

// TestCORS_ListedOriginsGetAccess_NoOtherAndNoneWhenUnset checks both
// configurations: with a list, only its origins; without one, no origin.
func TestCORS_ListedOriginsGetAccess_NoOtherAndNoneWhenUnset(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, tb *testBundle) {
			owner := tb.signIn(t, "owner@a.test").AccessToken
			for _, origin := range []string{"https://console.example.com", "null"} {
				noCORS(t, "preflight from "+origin, tb.do(t, "OPTIONS", "/v1/me", "", nil, preflight(origin)...))
				noCORS(t, "GET from "+origin, tb.do(t, "GET", "/v1/me", owner, nil, "Origin", origin))
			}
		})
	})
	for _, b := range dbtest.Backends(t) {
		t.Run("listed/"+b.Name, func(t *testing.T) {
			tb := setup(t, b, func(c *app.Config) { c.CORSOrigins = "https://console.example.com, HTTP://Localhost:3000" })
			owner := tb.signIn(t, "owner@a.test").AccessToken
			const listed = "https://console.example.com"

			// A preflight from a listed origin is answered at once.
			r := tb.do(t, "OPTIONS", "/v1/locations/any-id", "", nil, preflight(listed)...)
			if r.status != http.StatusNoContent {
				t.Fatalf("preflight from a listed origin: %d %s", r.status, r.body)
			}
			for h, want := range map[string]string{
				"Access-Control-Allow-Origin":  listed,
				"Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE",
				"Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id, X-Account-Id",
				"Access-Control-Max-Age":       "3600",
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("preflight from a listed origin: %s %q, want %q", h, got, want)
				}
			}
			if r.header.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(r.header.Get("Vary"), "Origin") {
				t.Errorf("preflight from a listed origin: credentials %q, Vary %q", r.header.Get("Access-Control-Allow-Credentials"), r.header.Get("Vary"))
			}
			// The list is compared as browsers write origins.
			if r := tb.do(t, "OPTIONS", "/v1/me", "", nil, preflight("http://localhost:3000")...); r.header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
				t.Errorf("preflight from the second listed origin: %d, allow origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
			}

			// The request itself, and its errors, can be read by the page.
			for _, tc := range []struct {
				token  string
				status int
			}{{owner, 200}, {"", 401}} {
				r := tb.do(t, "GET", "/v1/me", tc.token, nil, "Origin", listed)
				if r.status != tc.status || r.header.Get("Access-Control-Allow-Origin") != listed || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
					t.Errorf("GET from a listed origin: %d, allow origin %q, expose %q", r.status, r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Expose-Headers"))
				}
			}

			// Any other origin gets nothing, preflight or not, though the
			// answer still says it depends on Origin.
			for _, other := range []string{"https://evil.example.com", "https://console.example.com.evil.test", "null", "https://CONSOLE.example.com:444"} {
				r := tb.do(t, "OPTIONS", "/v1/locations/any-id", "", nil, preflight(other)...)
				noCORS(t, "preflight from "+other, r)
				if !strings.Contains(r.header.Get("Vary"), "Origin") {
					t.Errorf("preflight from %s: Vary %q", other, r.header.Get("Vary"))
				}
				noCORS(t, "GET from "+other, tb.do(t, "GET", "/v1/me", owner, nil, "Origin", other))
			}
			// A request without Origin is not cross-origin and still works.
			if r := tb.do(t, "GET", "/v1/me", owner, nil); r.status != 200 {
				t.Errorf("GET without Origin: %d", r.status)
			}
		})
	}
}
