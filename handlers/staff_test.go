package handlers_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/panelsync/panelsync/models"
)

type staffGrantResp struct {
	ID         string  `json:"id"`
	LoginID    string  `json:"login_id"`
	LoginEmail string  `json:"login_email"`
	LoginName  string  `json:"login_name"`
	Email      string  `json:"email"`
	ExpiresAt  *string `json:"expires_at"`
}

// supportLogin adds a support login with a name of its own to the
// operator's staff account.
func (tb *testBundle) supportLogin(t *testing.T, email, name string) models.Login {
	t.Helper()
	staff, err := tb.store.StaffAccount(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return mustCreate(t, func() (models.Login, error) {
		return tb.app.Auth().CreateLogin(context.Background(), staff.ID, email, name, models.RoleSupport, testPassword)
	})
}

func TestStaffGrants_NameTheSupportLoginTheyAreFor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		sam := tb.supportLogin(t, "sam@staff.test", "Sam Support")
		owner := tb.signIn(t, "owner@a.test").AccessToken

		r := tb.do(t, "POST", "/v1/staff-grants", owner, map[string]any{"email": "  SAM@Staff.test "})
		if r.status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.status, r.body)
		}
		var created staffGrantResp
		r.json(t, &created)
		if created.LoginID != sam.ID || created.LoginEmail != "sam@staff.test" || created.LoginName != "Sam Support" || created.Email != "sam@staff.test" {
			t.Fatalf("the grant's answer %+v, want Sam Support, sam@staff.test", created)
		}

		var list struct {
			Items []staffGrantResp `json:"items"`
		}
		tb.do(t, "GET", "/v1/staff-grants", owner, nil).json(t, &list)
		if len(list.Items) != 1 {
			t.Fatalf("grants %+v", list.Items)
		}
		if g := list.Items[0]; g.ID != created.ID || g.LoginEmail != "sam@staff.test" || g.LoginName != "Sam Support" {
			t.Fatalf("the listed grant %+v, want Sam Support, sam@staff.test", g)
		}
		// Another account's owner sees none of it.
		tb.do(t, "GET", "/v1/staff-grants", tb.signIn(t, "owner@b.test").AccessToken, nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("account B lists account A's grants: %+v", list.Items)
		}

		if r := tb.do(t, "DELETE", "/v1/staff-grants/"+created.ID, owner, nil); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if e := tb.audit(t, owner, "?action=staff.revoke").Items; len(e) != 1 || e[0].Target.Name != "sam@staff.test" {
			t.Fatalf("staff.revoke entries %+v, want one naming sam@staff.test", e)
		}
	})
}

func TestMe_NamesTheAccountTheRequestActsOn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.supportLogin(t, "sam@staff.test", "Sam Support")
		owner := tb.signIn(t, "owner@a.test").AccessToken
		if r := tb.do(t, "POST", "/v1/staff-grants", owner, map[string]any{"email": "sam@staff.test"}); r.status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.status, r.body)
		}
		support := tb.signIn(t, "sam@staff.test").AccessToken
		_, key := tb.createKey(t, owner, map[string]any{"name": "Reporting", "scopes": []string{"read"}})

		cases := []struct {
			who     string
			token   string
			headers []string
			want    string
		}{
			{"an owner", owner, nil, "Account A"},
			{"a member", tb.signIn(t, "member@a.test").AccessToken, nil, "Account A"},
			{"another account's owner", tb.signIn(t, "owner@b.test").AccessToken, nil, "Account B"},
			{"a support login at home", support, nil, "Support staff"},
			{"a support login acting under a grant", support, []string{"X-Account-Id", tb.acctA.ID}, "Account A"},
			{"an API key", key, nil, "Account A"},
		}
		for _, tc := range cases {
			r := tb.do(t, "GET", "/v1/me", tc.token, nil, tc.headers...)
			if r.status != http.StatusOK {
				t.Fatalf("%s: /v1/me %d %s", tc.who, r.status, r.body)
			}
			var me struct {
				AccountName string `json:"account_name"`
			}
			r.json(t, &me)
			if me.AccountName != tc.want {
				t.Errorf("%s: account_name %q, want %q", tc.who, me.AccountName, tc.want)
			}
		}
	})
}
