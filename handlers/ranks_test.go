package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestRanks_LocationAndGroupRank_AreSetShownAndAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		var ids []string
		for i, group := range []string{"North Sites", "North Sites", "South"} {
			r := tb.do(t, "POST", "/v1/locations", owner, map[string]any{"name": "Site " + string(rune('A'+i)), "group": group, "panel_serial": "PNL-R" + string(rune('A'+i))})
			if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"rank":0`) {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			var created struct {
				Location struct {
					ID string `json:"id"`
				} `json:"location"`
			}
			r.json(t, &created)
			ids = append(ids, created.Location.ID)
		}

		r := tb.do(t, "PATCH", "/v1/locations/"+ids[2], owner, map[string]any{"rank": 3})
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"rank":3`) {
			t.Fatalf("patch rank: %d %s", r.status, r.body)
		}
		r = tb.do(t, "PUT", "/v1/groups/North%20Sites/rank", owner, map[string]any{"rank": 2})
		if r.status != http.StatusOK || string(r.body) != `{"group":"North Sites","rank":2,"locations":2}` {
			t.Fatalf("group rank: %d %s", r.status, r.body)
		}
		for i, want := range []string{`"rank":2`, `"rank":2`, `"rank":3`} {
			if got := tb.do(t, "GET", "/v1/locations/"+ids[i], owner, nil); !strings.Contains(string(got.body), want) {
				t.Errorf("location %d: %s, want %s", i, got.body, want)
			}
		}
		audit := tb.do(t, "GET", "/v1/audit?action=group.rank", owner, nil)
		if audit.status != http.StatusOK || strings.Count(string(audit.body), `"action":"group.rank"`) != 1 || !strings.Contains(string(audit.body), `"locations":2`) {
			t.Fatalf("audit: %d %s", audit.status, audit.body)
		}
	})
}

func TestRanks_BadRankOrUnknownGroup_AreRefusedAndChangeNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "PNL-1")
		if r := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, owner, map[string]any{"group": "North"}); r.status != http.StatusOK {
			t.Fatalf("file in a group: %d %s", r.status, r.body)
		}
		_, auditBefore := tb.counts(t)
		cases := []struct {
			name, method, path string
			body               any
			status             int
			code, field        string
		}{
			{"negative location rank", "PATCH", "/v1/locations/" + loc.ID, map[string]any{"rank": -1}, 400, "invalid_request", "rank"},
			{"location rank too high", "PATCH", "/v1/locations/" + loc.ID, map[string]any{"rank": 1001}, 400, "invalid_request", "rank"},
			{"location rank not a number", "PATCH", "/v1/locations/" + loc.ID, `{"rank":"two"}`, 400, "invalid_request", ""},
			{"group rank missing", "PUT", "/v1/groups/North/rank", map[string]any{}, 400, "invalid_request", "rank"},
			{"group rank too high", "PUT", "/v1/groups/North/rank", map[string]any{"rank": 5000}, 400, "invalid_request", "rank"},
			{"group rank fractional", "PUT", "/v1/groups/North/rank", `{"rank":1.5}`, 400, "invalid_request", ""},
			{"unknown group", "PUT", "/v1/groups/West/rank", map[string]any{"rank": 1}, 404, "not_found", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := tb.do(t, tc.method, tc.path, owner, tc.body)
				if r.status != tc.status {
					t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
				}
				p := r.problem(t)
				if p.Code != tc.code || (tc.field != "" && p.Field != tc.field) {
					t.Errorf("problem %+v, want %s on %q", p, tc.code, tc.field)
				}
			})
		}
		if _, audit := tb.counts(t); audit != auditBefore {
			t.Errorf("refused requests wrote %d audit entries", audit-auditBefore)
		}
		if got := tb.do(t, "GET", "/v1/locations/"+loc.ID, owner, nil); !strings.Contains(string(got.body), `"rank":0`) {
			t.Errorf("the location's rank changed: %s", got.body)
		}
	})
}
