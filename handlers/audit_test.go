package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

type auditResp struct {
	ID         string `json:"id"`
	OccurredAt string `json:"occurred_at"`
	Actor      struct {
		Kind, ID, Name string
	} `json:"actor"`
	Action string `json:"action"`
	Target struct {
		Type, ID, Name string
	} `json:"target"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	RequestID string          `json:"request_id"`
}

type auditPage struct {
	Items      []auditResp `json:"items"`
	NextBefore *string     `json:"next_before"`
}

func (tb *testBundle) audit(t *testing.T, token, query string, headers ...string) auditPage {
	t.Helper()
	r := tb.do(t, "GET", "/v1/audit"+query, token, nil, headers...)
	if r.status != http.StatusOK {
		t.Fatalf("audit%s: %d %s", query, r.status, r.body)
	}
	var p auditPage
	r.json(t, &p)
	return p
}

func TestAudit_RecordsWhoWhatBeforeAfterAndRequest_FiltersAndPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.serve(t)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Harbour Office", "PNL-AUD-1")
		r := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, owner, map[string]any{"name": "Harbour HQ", "settings": map[string]any{"auto_apply": false}},
			"X-Request-Id", "req-rename-42")
		if r.status != http.StatusOK {
			t.Fatalf("rename: %d %s", r.status, r.body)
		}
		l := tb.invite(t, owner, "new@example.com", "member")
		if r := tb.do(t, "PATCH", "/v1/logins/"+l.ID, owner, map[string]string{"role": "admin"}); r.status != http.StatusOK {
			t.Fatalf("promote: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/logins/"+l.ID+"/deactivate", owner, nil); r.status != http.StatusOK {
			t.Fatalf("deactivate: %d", r.status)
		}

		all := tb.audit(t, owner, "")
		var actions []string
		for _, e := range all.Items {
			actions = append(actions, e.Action)
		}
		want := "login.deactivate login.update login.invite location.update location.create"
		if got := strings.Join(actions, " "); got != want {
			t.Fatalf("audit, newest first: %s\nwant %s", got, want)
		}
		upd := all.Items[3]
		if upd.Actor.Kind != "login" || upd.Actor.ID != tb.ownerA.ID || upd.Actor.Name != "owner@a.test" ||
			upd.Target.Type != "location" || upd.Target.ID != loc.ID || upd.Target.Name != "Harbour HQ" || upd.RequestID != "req-rename-42" {
			t.Fatalf("location.update entry %+v", upd)
		}
		if string(upd.Before) != `{"auto_apply":true,"name":"Harbour Office"}` || string(upd.After) != `{"auto_apply":false,"name":"Harbour HQ"}` {
			t.Fatalf("location.update values: before %s after %s", upd.Before, upd.After)
		}
		role := all.Items[1]
		if !strings.Contains(string(role.Before), `"role":"member"`) || !strings.Contains(string(role.After), `"role":"admin"`) || role.Target.Name != "new@example.com" {
			t.Fatalf("login.update entry %+v before %s after %s", role, role.Before, role.After)
		}
		if strings.Contains(string(all.Items[2].After), "password") {
			t.Fatalf("the invitation's audit entry mentions a password: %s", all.Items[2].After)
		}

		// The history of one record.
		hist := tb.audit(t, owner, "?target_type=login&target_id="+l.ID)
		if len(hist.Items) != 3 || hist.Items[2].Action != "login.invite" {
			t.Fatalf("history of the login: %+v", hist.Items)
		}
		if got := tb.audit(t, owner, "?action=location.create"); len(got.Items) != 1 || got.Items[0].Target.ID != loc.ID {
			t.Fatalf("filter by action: %+v", got.Items)
		}
		if got := tb.audit(t, owner, "?actor_id="+tb.memberA.ID); len(got.Items) != 0 {
			t.Fatalf("filter by an actor who changed nothing: %+v", got.Items)
		}

		// Pages of two, newest first, meet every entry once.
		var paged []string
		cursor := ""
		for range 5 {
			p := tb.audit(t, owner, "?limit=2"+cursor)
			for _, e := range p.Items {
				paged = append(paged, e.Action)
			}
			if p.NextBefore == nil {
				break
			}
			cursor = "&before=" + *p.NextBefore
		}
		if strings.Join(paged, " ") != want {
			t.Fatalf("paged audit: %v", paged)
		}

		bad := []string{"?limit=0", "?limit=201", "?before=yesterday", "?target_id=" + l.ID, "?actor=" + tb.ownerA.ID}
		for _, q := range bad {
			if r := tb.do(t, "GET", "/v1/audit"+q, owner, nil); r.status != http.StatusBadRequest {
				t.Errorf("GET /v1/audit%s: %d, want 400", q, r.status)
			}
		}
		// Another account sees none of it.
		if got := tb.audit(t, tb.signIn(t, "owner@b.test").AccessToken, ""); len(got.Items) != 0 {
			t.Fatalf("account B reads account A's audit log: %+v", got.Items)
		}
		// No route changes or deletes an entry.
		for _, m := range []string{"POST", "PATCH", "DELETE", "PUT"} {
			if r := tb.do(t, m, "/v1/audit", owner, nil); r.status < 400 {
				t.Errorf("%s /v1/audit answered %d", m, r.status)
			}
		}
	})
}

func TestAudit_Readers_OwnerAdminAndSupportUnderAGrant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		staff, err := tb.store.StaffAccount(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		tb.login(t, staff, "support@staff.test", models.RoleSupport)
		tb.login(t, tb.acctA, "admin@a.test", models.RoleAdmin)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		tb.createLocation(t, owner, "Depot", "PNL-AUD-2")
		support := tb.signIn(t, "support@staff.test").AccessToken

		if r := tb.do(t, "GET", "/v1/audit", tb.signIn(t, "admin@a.test").AccessToken, nil); r.status != http.StatusOK {
			t.Errorf("admin reads the audit log: %d", r.status)
		}
		if r := tb.do(t, "GET", "/v1/audit", tb.signIn(t, "member@a.test").AccessToken, nil); r.status != http.StatusForbidden {
			t.Errorf("member reads the audit log: %d", r.status)
		}
		noGrant := tb.do(t, "GET", "/v1/audit", support, nil, "X-Account-Id", tb.acctA.ID)
		if p := noGrant.problem(t); noGrant.status != http.StatusForbidden || p.Field != "X-Account-Id" {
			t.Fatalf("support without a grant: %d %+v", noGrant.status, p)
		}
		if r := tb.do(t, "POST", "/v1/staff-grants", owner, map[string]any{"email": "support@staff.test", "expires_at": time.Now().Add(time.Hour).UTC()}); r.status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "GET", "/v1/audit", support, nil); r.status != http.StatusForbidden {
			t.Fatalf("support read the staff account's own audit log without a grant: %d", r.status)
		}
		got := tb.audit(t, support, "", "X-Account-Id", tb.acctA.ID)
		if len(got.Items) != 2 || got.Items[0].Action != "staff.grant" || got.Items[1].Action != "location.create" {
			t.Fatalf("support reads account A's audit: %+v", got.Items)
		}
		// Under the grant support reads, never changes.
		if r := tb.do(t, "GET", "/v1/locations", support, nil, "X-Account-Id", tb.acctA.ID); r.status != http.StatusOK || !strings.Contains(string(r.body), "Depot") {
			t.Fatalf("support lists account A's locations: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "POST", "/v1/locations", support, map[string]string{"name": "Mine", "panel_serial": "PNL-X"}, "X-Account-Id", tb.acctA.ID); r.status != http.StatusForbidden {
			t.Fatalf("support created a location: %d", r.status)
		}
		if r := tb.do(t, "GET", "/v1/logins", support, nil, "X-Account-Id", tb.acctA.ID); r.status != http.StatusForbidden {
			t.Fatalf("support lists logins: %d", r.status)
		}
		me := tb.do(t, "GET", "/v1/me", support, nil)
		if !strings.Contains(string(me.body), `"grants":[{"account_id":"`+tb.acctA.ID+`","account_name":"Account A"`) {
			t.Fatalf("support's /me does not list the grant: %s", me.body)
		}
		// The owner of one account cannot use the header to reach another.
		if r := tb.do(t, "GET", "/v1/locations", owner, nil, "X-Account-Id", tb.acctB.ID); r.status != http.StatusForbidden {
			t.Fatalf("an owner used X-Account-Id on another account: %d", r.status)
		}
	})
}
