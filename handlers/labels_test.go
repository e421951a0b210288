package handlers_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestNamesAndGroups_ControlCharacters_Answer400AndWriteNothing covers
// every name, group and label the API accepts: a control character in one
// could forge lines in logs, CSV downloads and mails.
func TestNamesAndGroups_ControlCharacters_Answer400AndWriteNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "PNL-CTL1")
		cases := []struct {
			name, method, path string
			body               any
			field              string
		}{
			{"location name with a newline", "POST", "/v1/locations", map[string]any{"name": "Main\nStreet", "panel_serial": "PNL-CTL2"}, "name"},
			{"location name with NUL", "POST", "/v1/locations", map[string]any{"name": "Main\x00", "panel_serial": "PNL-CTL2"}, "name"},
			{"location group with a tab", "POST", "/v1/locations", map[string]any{"name": "Depot", "group": "Retail\tEast", "panel_serial": "PNL-CTL2"}, "group"},
			{"renamed with DEL", "PATCH", "/v1/locations/" + loc.ID, map[string]any{"name": "Main\x7f"}, "name"},
			{"regrouped with ESC", "PATCH", "/v1/locations/" + loc.ID, map[string]any{"group": "\x1b[31mRed"}, "group"},
			{"API key name with CR LF", "POST", "/v1/api-keys", map[string]any{"name": "Nightly\r\nimport", "scopes": []string{"read"}}, "name"},
			{"batch group", "POST", "/v1/sync", map[string]any{"kind": "users", "scope": "group", "group": "Re\ntail"}, "group"},
			{"forced sync group", "POST", "/v1/force-sync", map[string]any{"scope": "group", "group": "Re\x07tail"}, "group"},
			{"location list group", "GET", "/v1/locations?group=" + url.QueryEscape("Re\r\ntail"), nil, "group"},
		}
		beforeLoc, beforeAudit := tb.counts(t)
		for _, tc := range cases {
			r := tb.do(t, tc.method, tc.path, owner, tc.body)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want 400", tc.name, r.status, r.body)
				continue
			}
			if p := r.problem(t); p.Code != "invalid_request" || p.Field != tc.field {
				t.Errorf("%s: problem %+v, want field %s", tc.name, p, tc.field)
			}
		}
		if l, a := tb.counts(t); l != beforeLoc || a != beforeAudit {
			t.Fatalf("refused requests wrote rows: locations %d→%d, audit %d→%d", beforeLoc, l, beforeAudit, a)
		}
		var after locationResp
		tb.do(t, "GET", "/v1/locations/"+loc.ID, owner, nil).json(t, &after)
		if after.Name != "Main Street" || after.Group != "" {
			t.Fatalf("a refused update changed the location: %+v", after)
		}

		// Letters of any script and symbols are no control characters.
		accepted := tb.createLocation(t, owner, "Café Zürich — 東京 ✓", "PNL-CTL3")
		if accepted.Name != "Café Zürich — 東京 ✓" {
			t.Fatalf("name stored as %q", accepted.Name)
		}
	})
}
