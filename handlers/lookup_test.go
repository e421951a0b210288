package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

// personResp is a person of the lookup as the tests read it.
type personResp struct {
	Name               string  `json:"name"`
	Email              string  `json:"email"`
	ExternalID         *string `json:"external_id"`
	LoginID            *string `json:"login_id"`
	LocationsTruncated bool    `json:"locations_truncated"`
	Locations          []struct {
		LocationID     string  `json:"location_id"`
		LocationName   string  `json:"location_name"`
		UserNumber     int     `json:"user_number"`
		Name           string  `json:"name"`
		Email          string  `json:"email"`
		Authority      string  `json:"authority"`
		Partitions     []int   `json:"partitions"`
		HasCode        bool    `json:"has_code"`
		Linked         bool    `json:"linked"`
		LastReceivedAt *string `json:"last_received_at"`
		RunID          *string `json:"run_id"`
	} `json:"locations"`
}

type peoplePage struct {
	Items      []personResp `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// lookup asks GET /v1/people for q as token, and fails the test unless it
// answers 200.
func (tb *testBundle) lookup(t *testing.T, token, q string, extra ...string) (peoplePage, response) {
	t.Helper()
	r := tb.do(t, "GET", "/v1/people?q="+url.QueryEscape(q)+strings.Join(extra, ""), token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("lookup %q: %d %s", q, r.status, r.body)
	}
	var page peoplePage
	r.json(t, &page)
	return page, r
}

// lookupPages follows next_cursor from the first page of the lookup of q
// to the last, and returns every page.
func (tb *testBundle) lookupPages(t *testing.T, token, q string, extra ...string) []peoplePage {
	t.Helper()
	var pages []peoplePage
	cursor := ""
	for len(pages) < 5 {
		page, _ := tb.lookup(t, token, q, append(extra, cursor)...)
		pages = append(pages, page)
		if page.NextCursor == nil {
			return pages
		}
		cursor = "&cursor=" + *page.NextCursor
	}
	t.Fatalf("paging through %q does not end: %+v", q, pages)
	return nil
}

// panelUser is a panel user the tests put in the remote copy.
type panelUser struct {
	number     int
	name       string
	email      string
	externalID string
	loginID    string
}

// putUsers writes users into a location's remote copy through the store,
// as a users run with runID would, received at the given time.
func (tb *testBundle) putUsers(t *testing.T, locationID, runID string, at time.Time, users ...panelUser) {
	t.Helper()
	rows := make([]models.PanelUser, len(users))
	numbers := make([]int, len(users))
	for i, u := range users {
		rows[i] = models.PanelUser{
			ID: models.NewID(), LocationID: locationID, UserNumber: u.number, Name: u.name, Email: u.email,
			ExternalID: u.externalID, Authority: "standard", Partitions: "1,2", HasCode: true,
			CodeDigest: strings.Repeat("c0de", 16),
		}
		if u.loginID != "" {
			rows[i].LoginID = &u.loginID
		}
		numbers[i] = u.number
	}
	err := tb.store.ApplyPanelUsers(context.Background(), locationID, rows, nil, nil,
		models.UsersReceipt{RunID: runID, At: at, Numbers: numbers})
	if err != nil {
		t.Fatal(err)
	}
}

// member adds a member login with a name of its own to the account.
func (tb *testBundle) member(t *testing.T, acct models.Account, email, name string) models.Login {
	t.Helper()
	return mustCreate(t, func() (models.Login, error) {
		return tb.app.Auth().CreateLogin(context.Background(), acct.ID, email, name, models.RoleMember, testPassword)
	})
}

// names lists the names of a page's people, in order.
func names(page peoplePage) []string {
	out := make([]string, len(page.Items))
	for i, p := range page.Items {
		out[i] = p.Name
	}
	return out
}

func TestPeople_FindsByNamePartEmailUserNumberAndExternalID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Office", "PNL-LOOKUP-1")
		main := tb.createLocation(t, owner, "Main Street", "PNL-LOOKUP-2")
		at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
		tb.putUsers(t, harbour.ID, "run-harbour", at,
			panelUser{number: 3, name: "Alice Smith", email: "alice@example.com"},
			panelUser{number: 5, name: "Carol Brown", email: "carol@example.com", externalID: "HR-0042"})
		tb.putUsers(t, main.ID, "run-main", at.Add(time.Hour),
			panelUser{number: 7, name: "Alice M. Smith", email: "alice@example.com"},
			panelUser{number: 12, name: "Bob Jones"})

		// Part of a name, in any case: one person, at both locations, by
		// location name; the name is the one received last.
		page, r := tb.lookup(t, owner, "  aLiCe ")
		if len(page.Items) != 1 || page.NextCursor != nil {
			t.Fatalf("lookup alice: %s", r.body)
		}
		alice := page.Items[0]
		if alice.Name != "Alice M. Smith" || alice.Email != "alice@example.com" || alice.LoginID != nil || alice.ExternalID != nil || len(alice.Locations) != 2 {
			t.Fatalf("alice %+v", alice)
		}
		first, second := alice.Locations[0], alice.Locations[1]
		if first.LocationID != harbour.ID || first.LocationName != "Harbour Office" || first.UserNumber != 3 || first.Name != "Alice Smith" ||
			first.Authority != "standard" || fmt.Sprint(first.Partitions) != "[1 2]" || !first.HasCode || first.Linked ||
			first.RunID == nil || *first.RunID != "run-harbour" || first.LastReceivedAt == nil || *first.LastReceivedAt != "2026-03-01T09:30:00Z" {
			t.Fatalf("alice at the harbour %+v", first)
		}
		if second.LocationID != main.ID || second.UserNumber != 7 || second.RunID == nil || *second.RunID != "run-main" {
			t.Fatalf("alice on main street %+v", second)
		}
		// Neither the code nor its digest is ever part of the answer.
		if body := string(r.body); strings.Contains(body, "c0de") || strings.Contains(body, `"code`) || strings.Contains(body, "digest") {
			t.Fatalf("the lookup shows a code or its digest: %s", body)
		}

		for _, c := range []struct {
			q, want string
		}{
			{"ALICE@Example.COM", "[Alice M. Smith]"},
			{"example.com", "[Alice M. Smith Carol Brown]"},
			{"jones", "[Bob Jones]"},
			{"12", "[Bob Jones]"},
			{"012", "[Bob Jones]"},
			{"5", "[Carol Brown]"},
			{"HR-0042", "[Carol Brown]"},
			// An external id matches exactly, never in part.
			{"HR-004", "[]"},
			{"nobody", "[]"},
		} {
			page, r := tb.lookup(t, owner, c.q)
			if got := fmt.Sprint(names(page)); got != c.want {
				t.Errorf("lookup %q found %s, want %s: %s", c.q, got, c.want, r.body)
			}
		}
		page, _ = tb.lookup(t, owner, "HR-0042")
		if carol := page.Items[0]; carol.ExternalID == nil || *carol.ExternalID != "HR-0042" {
			t.Fatalf("carol's external id %v", carol.ExternalID)
		}
		// Bob has no e-mail: he is a person of his own, with e-mail "".
		page, r = tb.lookup(t, owner, "bob")
		if len(page.Items) != 1 || page.Items[0].Email != "" || !strings.Contains(string(r.body), `"email":""`) {
			t.Fatalf("bob: %s", r.body)
		}
	})
}

func TestPeople_LinkedLoginGroupsUsersWithDifferentEmails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Office", "PNL-LINKED-1")
		main := tb.createLocation(t, owner, "Main Street", "PNL-LINKED-2")
		dana := tb.member(t, tb.acctA, "dana.login@a.test", "Dana Whitfield")
		at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
		tb.putUsers(t, harbour.ID, "run-1", at,
			panelUser{number: 9, name: "D. Whitfield", email: "dana@home.test", loginID: dana.ID},
			// Unlinked, with the e-mail of a linked user: a person of its own.
			panelUser{number: 10, name: "Dana W.", email: "dana@home.test"})
		tb.putUsers(t, main.ID, "run-2", at.Add(time.Hour),
			panelUser{number: 4, name: "Dana W", email: "dana@work.test", loginID: dana.ID})

		page, r := tb.lookup(t, owner, "dana")
		if len(page.Items) != 2 {
			t.Fatalf("lookup dana: %s", r.body)
		}
		linked := page.Items[0]
		if linked.LoginID == nil || *linked.LoginID != dana.ID || linked.Name != "Dana Whitfield" || linked.Email != "dana@work.test" || len(linked.Locations) != 2 {
			t.Fatalf("linked person %+v", linked)
		}
		for _, l := range linked.Locations {
			if !l.Linked {
				t.Fatalf("a user linked to a login shows linked false: %+v", l)
			}
		}
		if got := []int{linked.Locations[0].UserNumber, linked.Locations[1].UserNumber}; fmt.Sprint(got) != "[9 4]" {
			t.Fatalf("linked person's user numbers %v", got)
		}
		// The login's own e-mail is not shown: logins are the owners' and
		// admins' to list.
		if strings.Contains(string(r.body), "dana.login@a.test") {
			t.Fatalf("the lookup shows the login's e-mail: %s", r.body)
		}
		if unlinked := page.Items[1]; unlinked.LoginID != nil || unlinked.Name != "Dana W." || len(unlinked.Locations) != 1 || unlinked.Locations[0].Linked {
			t.Fatalf("unlinked person %+v", unlinked)
		}

		// The login's name is the name shown, so it finds the person too.
		page, r = tb.lookup(t, owner, "whitfield")
		if len(page.Items) != 1 || page.Items[0].LoginID == nil || len(page.Items[0].Locations) != 2 {
			t.Fatalf("lookup by the login's name: %s", r.body)
		}
		// One of the person's users found is enough to show them all.
		page, r = tb.lookup(t, owner, "dana@work")
		if len(page.Items) != 1 || len(page.Items[0].Locations) != 2 {
			t.Fatalf("lookup by one user's e-mail: %s", r.body)
		}
	})
}

func TestPeople_OtherAccountsUsersNeverAppear(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		ownerA := tb.signIn(t, "owner@a.test").AccessToken
		ownerB := tb.signIn(t, "owner@b.test").AccessToken
		locA := tb.createLocation(t, ownerA, "Harbour Office", "PNL-TENANT-A")
		locB := tb.createLocation(t, ownerB, "Harbour Office", "PNL-TENANT-B")
		// Account B's login has a name that matches, and B's users share
		// A's user's e-mail and external id.
		loginB := tb.member(t, tb.acctB, "erin@b.test", "Erin Stone")
		now := time.Now()
		tb.putUsers(t, locA.ID, "run-a", now,
			panelUser{number: 1, name: "Erin Stone", email: "erin@example.com", externalID: "E-1"},
			// Linking never crosses accounts; if a row did, the other
			// account's login would still lend it neither a match nor a name.
			panelUser{number: 2, name: "Temp Worker", loginID: loginB.ID})
		tb.putUsers(t, locB.ID, "run-b", now,
			panelUser{number: 1, name: "Erin Stone", email: "erin@example.com", externalID: "E-1"},
			panelUser{number: 2, name: "Someone Else", loginID: loginB.ID})

		for _, q := range []string{"erin", "erin@example.com", "E-1", "1", "stone"} {
			page, r := tb.lookup(t, ownerA, q)
			if len(page.Items) != 1 || len(page.Items[0].Locations) != 1 || page.Items[0].Locations[0].LocationID != locA.ID {
				t.Fatalf("account A's lookup %q: %s", q, r.body)
			}
		}
		if page, r := tb.lookup(t, ownerA, "temp"); len(page.Items) != 1 || page.Items[0].Name != "Temp Worker" {
			t.Fatalf("account A's lookup of a user linked across accounts: %s", r.body)
		}
		// Account B sees its own, and its login's name finds its person.
		page, r := tb.lookup(t, ownerB, "stone")
		if len(page.Items) != 2 || strings.Contains(string(r.body), locA.ID) {
			t.Fatalf("account B's lookup: %s", r.body)
		}
		// A member of account A reads the same as its owner, and so does
		// support staff acting on account A under a grant.
		if page, _ := tb.lookup(t, tb.signIn(t, "member@a.test").AccessToken, "erin"); len(page.Items) != 1 {
			t.Fatalf("member's lookup %+v", page)
		}
		staff, err := tb.store.StaffAccount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tb.login(t, staff, "helper@staff.test", models.RoleSupport)
		if r := tb.do(t, "POST", "/v1/staff-grants", ownerA, map[string]any{"email": "helper@staff.test"}); r.status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.status, r.body)
		}
		r = tb.do(t, "GET", "/v1/people?q=erin", tb.signIn(t, "helper@staff.test").AccessToken, nil, "X-Account-Id", tb.acctA.ID)
		r.json(t, &page)
		if r.status != http.StatusOK || len(page.Items) != 1 || page.Items[0].Locations[0].LocationID != locA.ID {
			t.Fatalf("support's lookup under a grant: %d %s", r.status, r.body)
		}
	})
}

func TestPeople_LikeWildcardsInTheQueryAreLiteral(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Harbour Office", "PNL-LIKE-1")
		tb.putUsers(t, loc.ID, "run-1", time.Now(),
			panelUser{number: 1, name: "100% Guard"},
			panelUser{number: 2, name: "Guard_1"},
			panelUser{number: 3, name: "Guardx1"},
			panelUser{number: 4, name: "Night! Guard"},
			panelUser{number: 5, name: `Back\slash`})
		for _, c := range []struct{ q, want string }{
			{"%", "[100% Guard]"},
			{"_", "[Guard_1]"},
			{"d_1", "[Guard_1]"},
			{"%%", "[]"},
			{"!", "[Night! Guard]"},
			{"!%", "[]"},
			{`\`, `[Back\slash]`},
			{"guard", "[100% Guard Guard_1 Guardx1 Night! Guard]"},
		} {
			page, r := tb.lookup(t, owner, c.q)
			got := names(page)
			slices.Sort(got)
			if fmt.Sprint(got) != c.want {
				t.Errorf("lookup %q found %v, want %s: %s", c.q, got, c.want, r.body)
			}
		}
	})
}

func TestPeople_BadQuery_Answers400(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		for _, c := range []struct {
			name, query, field string
		}{
			{"no q", "", "q"},
			{"empty q", "?q=", "q"},
			{"blank q", "?q=%20%20", "q"},
			{"201 characters", "?q=" + strings.Repeat("é", 201), "q"},
			{"a control character", "?q=ali%0Ace", "q"},
			{"a NUL", "?q=ali%00ce", "q"},
			{"q twice", "?q=a&q=b", "q"},
			{"an unknown parameter", "?q=alice&name=alice", "name"},
			{"limit 0", "?q=alice&limit=0", "limit"},
			{"limit 201", "?q=alice&limit=201", "limit"},
			{"a made-up cursor", "?q=alice&cursor=bm90LWEtY3Vyc29y", "cursor"},
		} {
			r := tb.do(t, "GET", "/v1/people"+c.query, owner, nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", c.name, r.status, r.body)
				continue
			}
			if p := r.problem(t); p.Code != "invalid_request" || p.Field != c.field {
				t.Errorf("%s: problem %+v, want invalid_request on %s", c.name, p, c.field)
			}
		}
		// 200 characters is within bounds.
		if r := tb.do(t, "GET", "/v1/people?q="+strings.Repeat("é", 200), owner, nil); r.status != http.StatusOK {
			t.Fatalf("200 characters: %d %s", r.status, r.body)
		}
	})
}

func TestPeople_PagesWithACursor_EachPersonOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Office", "PNL-PAGE-1")
		main := tb.createLocation(t, owner, "Main Street", "PNL-PAGE-2")
		login := tb.member(t, tb.acctA, "pat@a.test", "Guard Pat")
		now := time.Now()
		tb.putUsers(t, harbour.ID, "run-1", now,
			panelUser{number: 1, name: "Guard One", email: "one@example.com"},
			panelUser{number: 2, name: "Guard Two"},
			panelUser{number: 3, name: "Guard Three", email: "three@example.com"},
			panelUser{number: 4, name: "Pat", loginID: login.ID})
		tb.putUsers(t, main.ID, "run-2", now,
			panelUser{number: 1, name: "Guard One", email: "one@example.com"},
			panelUser{number: 2, name: "Guard Four"},
			panelUser{number: 5, name: "Pat", loginID: login.ID})

		var seen []string
		for _, page := range tb.lookupPages(t, owner, "guard", "&limit=2") {
			if len(page.Items) > 2 {
				t.Fatalf("page of %d people with limit 2: %+v", len(page.Items), page)
			}
			for _, p := range page.Items {
				seen = append(seen, fmt.Sprintf("%s@%d", p.Name, len(p.Locations)))
			}
		}
		slices.Sort(seen)
		if want := "[Guard Four@1 Guard One@2 Guard Pat@2 Guard Three@1 Guard Two@1]"; fmt.Sprint(seen) != want {
			t.Fatalf("people over all pages %v, want %s", seen, want)
		}
	})
}

func TestPeople_PageReadsAtMostMaxPeopleRowsUsers_ThePersonCutShortIsFlagged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		locs := []locationResp{
			tb.createLocation(t, owner, "Depot 1", "PNL-ROWS-1"),
			tb.createLocation(t, owner, "Depot 2", "PNL-ROWS-2"),
			tb.createLocation(t, owner, "Depot 3", "PNL-ROWS-3"),
		}
		login := tb.member(t, tb.acctA, "tech@a.test", "Roving Technician")
		slots := func(n int, u panelUser) []panelUser {
			out := make([]panelUser, n)
			for i := range out {
				out[i] = u
				out[i].number = i + 1
			}
			return out
		}
		now := time.Now()
		// A linked person with more users than a page reads, then two
		// people whose users together overflow the next page.
		tb.putUsers(t, locs[0].ID, "run-1", now, slots(models.MaxPeopleRows+1, panelUser{name: "Tech", loginID: login.ID})...)
		tb.putUsers(t, locs[1].ID, "run-2", now, slots(models.MaxPeopleRows-1, panelUser{name: "Shift", email: "a-shift@example.com"})...)
		tb.putUsers(t, locs[2].ID, "run-3", now, slots(5, panelUser{name: "Shift", email: "b-shift@example.com"})...)

		var got []string
		for _, page := range tb.lookupPages(t, owner, "t") {
			for _, p := range page.Items {
				got = append(got, fmt.Sprintf("%s %d %v", p.Email, len(p.Locations), p.LocationsTruncated))
				for _, l := range p.Locations {
					if l.RunID == nil || l.LastReceivedAt == nil {
						t.Fatalf("user %d at %s was put with a receipt but shows none", l.UserNumber, l.LocationName)
					}
				}
			}
			got = append(got, "|")
		}
		want := fmt.Sprint([]string{
			fmt.Sprintf(" %d true", models.MaxPeopleRows), "|",
			fmt.Sprintf("a-shift@example.com %d false", models.MaxPeopleRows-1), "|",
			"b-shift@example.com 5 false", "|",
		})
		if fmt.Sprint(got) != want {
			t.Fatalf("pages %v, want %s", got, want)
		}
	})
}
