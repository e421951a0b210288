package handlers_test

import (
	"net/http"
	"testing"
)

// TestUnknownQueryParameters_Answer400NamingThem: a misspelt filter is a
// clear 400, not a silently unfiltered answer, on every GET route but the
// operations ones.
func TestUnknownQueryParameters_Answer400NamingThem(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "PNL-QRY1")
		const id = "00000000-0000-0000-0000-000000000000"
		refused := []struct{ path, field string }{
			{"/v1/runs?stat=failed", "stat"},
			{"/v1/runs?state=failed&state=queued", "state"},
			{"/v1/runs?location_id=" + loc.ID + "&sort=asc", "sort"},
			{"/v1/locations?groups=Retail", "groups"},
			{"/v1/locations/" + loc.ID + "?expand=panel", "expand"},
			{"/v1/locations/" + loc.ID + "/users?limit=5", "limit"},
			{"/v1/locations/" + loc.ID + "/panel?x=1", "x"},
			{"/v1/locations/" + loc.ID + "/status?x=1", "x"},
			{"/v1/events?offset=3", "offset"},
			{"/v1/runs/" + id + "?x=1", "x"},
			{"/v1/runs/" + id + "/data?fmt=csv", "fmt"},
			{"/v1/runs/" + id + "/changes?x=1", "x"},
			{"/v1/batches/" + id + "?x=1", "x"},
			{"/v1/batches?status=done", "status"},
			{"/v1/runs?batch=" + id, "batch"},
			{"/v1/events?sort=newest", "sort"},
			{"/v1/me?verbose=1", "verbose"},
			{"/v1/api-keys?all=true", "all"},
			{"/v1/api-keys/" + id + "?x=1", "x"},
			{"/v1/staff-grants?x=1", "x"},
			{"/v1/realtime?tickets=abc", "tickets"},
			{"/device/v1/link?x=1", "x"},
		}
		for _, tc := range refused {
			for _, method := range []string{"GET", "HEAD"} {
				r := tb.do(t, method, tc.path, owner, nil)
				if r.status != http.StatusBadRequest {
					t.Errorf("%s %s: %d %s, want 400", method, tc.path, r.status, r.body)
					continue
				}
				if method == "HEAD" {
					continue
				}
				if p := r.problem(t); p.Code != "invalid_request" || p.Field != tc.field {
					t.Errorf("GET %s: problem %+v, want field %s", tc.path, p, tc.field)
				}
			}
		}

		accepted := []struct {
			path   string
			status int
		}{
			{"/v1/runs?state=failed&kind=users&location_id=" + loc.ID + "&limit=10", 200},
			{"/v1/locations?group=&limit=10", 200},
			{"/v1/events?after=0&limit=5&type=sync.requested&location_id=" + loc.ID, 200},
			{"/v1/events?before=100", 200},
			{"/v1/events?order=newest&limit=5&type=sync.requested&location_id=" + loc.ID, 200},
			{"/v1/events?order=newest&before=100", 200},
			{"/v1/batches?limit=10", 200},
			{"/v1/runs?batch_id=" + id, 404},
			{"/v1/runs/" + id + "/data?format=csv", 404},
			// Operations routes stay tolerant (cache busters, probes).
			{"/healthz?probe=1", 200},
			{"/readyz?probe=1", 200},
			{"/openapi.yaml?v=2", 200},
			{"/docs?v=2", 200},
		}
		for _, tc := range accepted {
			if r := tb.do(t, "GET", tc.path, owner, nil); r.status != tc.status {
				t.Errorf("GET %s: %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
		}
	})
}
