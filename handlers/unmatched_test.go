package handlers_test

import (
	"net/http"
	"testing"
)

func TestUnmatchedRequests_Answer405WithAllow404Or501(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "PNL-0405")
		cases := []struct {
			method, path string
			status       int
			code         string
			allow        string
		}{
			// A known path with a method it does not take, a token or not.
			{"DELETE", "/v1/locations/" + loc.ID, 405, "method_not_allowed", "GET, HEAD, PATCH, OPTIONS"},
			{"DELETE", "/v1/locations/any-id/", 405, "method_not_allowed", "GET, HEAD, PATCH, OPTIONS"},
			{"GET", "/v1/locations/any-id/sync", 405, "method_not_allowed", "POST, OPTIONS"},
			{"POST", "/v1/me", 405, "method_not_allowed", "GET, HEAD, OPTIONS"},
			{"PUT", "/v1/locations", 405, "method_not_allowed", "GET, HEAD, POST, OPTIONS"},
			{"POST", "/docs/assets/redoc.standalone.js", 405, "method_not_allowed", "GET, HEAD, OPTIONS"},
			{"TRACE", "/v1/api-keys/any-id", 405, "method_not_allowed", "GET, HEAD, DELETE, OPTIONS"},
			// A parameter takes one path segment, never more or none.
			{"POST", "/v1/locations/a/b/sync", 404, "not_found", ""},
			{"GET", "/v1/locations/any-id/nothing", 404, "not_found", ""},
			{"GET", "/v1/nothing-here", 404, "not_found", ""},
			// A method this server implements on no path at all.
			{"BREW", "/v1/me", 501, "not_implemented", ""},
			{"BREW", "/nowhere", 501, "not_implemented", ""},
		}
		for _, tc := range cases {
			for _, token := range []string{"", owner} {
				r := tb.do(t, tc.method, tc.path, token, nil)
				if r.status != tc.status {
					t.Errorf("%s %s: status %d, want %d: %s", tc.method, tc.path, r.status, tc.status, r.body)
					continue
				}
				if p := r.problem(t); p.Code != tc.code || p.Status != tc.status || p.Title == "" || p.Detail == "" {
					t.Errorf("%s %s: problem %+v, want code %s", tc.method, tc.path, p, tc.code)
				}
				if got := r.header.Get("Allow"); got != tc.allow {
					t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
				}
				if r.header.Get("X-Request-Id") == "" {
					t.Errorf("%s %s: no X-Request-Id", tc.method, tc.path)
				}
			}
		}

		// OPTIONS on a known path says what it takes; on an unknown one, 404.
		r := tb.do(t, "OPTIONS", "/v1/locations/"+loc.ID, "", nil)
		if r.status != http.StatusNoContent || r.header.Get("Allow") != "GET, HEAD, PATCH, OPTIONS" {
			t.Errorf("OPTIONS on a location: %d, Allow %q", r.status, r.header.Get("Allow"))
		}
		if r := tb.do(t, "OPTIONS", "/nowhere", "", nil); r.status != http.StatusNotFound {
			t.Errorf("OPTIONS on an unknown path: %d", r.status)
		}
		// The routes themselves still answer, HEAD wherever GET does.
		for _, method := range []string{"GET", "HEAD"} {
			if r := tb.do(t, method, "/v1/locations/"+loc.ID, owner, nil); r.status != http.StatusOK {
				t.Errorf("%s the location: %d %s", method, r.status, r.body)
			}
		}
	})
}
