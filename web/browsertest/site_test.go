package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

// site is a running node on SQLite with one account, whose owner signs
// in to the console with ownerEmail and apptest.Password.
type site struct {
	node       *apptest.Node
	account    models.Account
	ownerEmail string
	token      string
}

// startSite starts a node for the test. tune, when given, changes the
// node's configuration first, for tests that need failures to come
// quickly.
func startSite(t *testing.T, tune func(*app.Config)) *site {
	t.Helper()
	cfg := apptest.Config(t, dbtest.Backend{Name: "sqlite"})
	if tune != nil {
		tune(&cfg)
	}
	node := apptest.Start(t, cfg)
	ctx := context.Background()
	acct, err := node.Store.CreateAccount(ctx, "Northwind Security")
	if err != nil {
		t.Fatal(err)
	}
	email := "dana.owner@northwind.test"
	if _, err := node.App.Auth().CreateLogin(ctx, acct.ID, email, "Dana Owner", models.RoleOwner, apptest.Password); err != nil {
		t.Fatal(err)
	}
	return &site{node: node, account: acct, ownerEmail: email, token: node.Token(t, email)}
}

// location adds a location whose simulated panel is linked and has
// finished its first users sync.
func (s *site) location(t *testing.T, name string) (models.Location, *sim.Panel) {
	t.Helper()
	v, cred := s.node.Location(t, s.account.ID, name)
	p, _ := s.node.Panel(t, cred, sim.Options{Users: 8})
	return v.Location, p
}

// lastOffset is the offset of the account's newest event, 0 for none.
func (s *site) lastOffset(t *testing.T) int64 {
	t.Helper()
	events := s.events(t)
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].Offset
}

// events is the account's whole Event Log, oldest first.
func (s *site) events(t *testing.T) []apptest.Event {
	t.Helper()
	var all []apptest.Event
	after := int64(-1)
	for {
		path := "/v1/events?limit=500"
		if after >= 0 {
			path += fmt.Sprintf("&after=%d", after)
		}
		r := s.node.Do(t, "GET", path, s.token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("events: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items []apptest.Event `json:"items"`
		}
		r.JSON(t, &page)
		if len(page.Items) == 0 {
			return all
		}
		all = append(all, page.Items...)
		after = page.Items[len(page.Items)-1].Offset
	}
}

// signIn signs the owner in through the sign-in page and waits for the
// page the console opens next.
func (b *browser) signIn(s *site) {
	b.t.Helper()
	b.signInAs(s.ownerEmail, "Locations")
}

// signInAs signs a login in and waits for the page the console opens for
// it, by its heading.
func (b *browser) signInAs(email, landing string) {
	b.t.Helper()
	b.open("/signin")
	b.waitFor("the sign-in form", present(onPage().control("E-mail")))
	b.typeInto("E-mail", onPage().control("E-mail"), email)
	b.typeInto("Password", onPage().control("Password"), apptest.Password)
	b.click("Sign in", onPage().button("Sign in"))
	b.waitFor("the "+landing+" page", heading(landing))
}
