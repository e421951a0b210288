package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
)

type eventResp struct {
	Offset       int64   `json:"offset"`
	LocationID   *string `json:"location_id"`
	LocationName *string `json:"location_name"`
	Type         string  `json:"type"`
}

type eventPage struct {
	Items      []eventResp `json:"items"`
	NextAfter  *int64      `json:"next_after"`
	NextBefore *int64      `json:"next_before"`
}

func (tb *testBundle) listEvents(t *testing.T, token, query string) eventPage {
	t.Helper()
	return getOK[eventPage](t, tb, token, "/v1/events"+query)
}

func offsets(events []eventResp) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Offset
	}
	return out
}

// appendEvents writes entries as a producer does: n at the location, by
// type, then one account-wide.
func (tb *testBundle) appendEvents(t *testing.T, locationID string, n int) {
	t.Helper()
	events := make([]models.NewEvent, 0, n+1)
	for i := range n {
		events = append(events, models.NewEvent{
			AccountID: tb.acctA.ID, LocationID: locationID, Type: fmt.Sprintf("test.kind%d", i%2), Message: fmt.Sprint(i),
		})
	}
	events = append(events, models.NewEvent{AccountID: tb.acctA.ID, Type: "test.account", Message: "account-wide"})
	if _, err := tb.app.Events().Append(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
}

func TestEvents_OrderNewest_PagesBackFromTheLatestEntry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Street", "PNL-EVT-1")
		quay := tb.createLocation(t, owner, "Quay Side", "PNL-EVT-2")
		tb.appendEvents(t, harbour.ID, 5)
		tb.appendEvents(t, quay.ID, 2)

		oldest := tb.listEvents(t, owner, "")
		if len(oldest.Items) < 9 {
			t.Fatalf("the log holds %d entries, want at least the 9 written", len(oldest.Items))
		}
		if explicit := tb.listEvents(t, owner, "?order=oldest"); !slices.Equal(offsets(explicit.Items), offsets(oldest.Items)) {
			t.Errorf("order=oldest lists %v, no order %v", offsets(explicit.Items), offsets(oldest.Items))
		}

		// Newest first, three at a time, down to the first entry.
		var walked []int64
		query := "?order=newest&limit=3"
		for range 10 {
			page := tb.listEvents(t, owner, query)
			if page.NextAfter != nil {
				t.Fatalf("a newest-first page gave next_after %d", *page.NextAfter)
			}
			walked = append(walked, offsets(page.Items)...)
			if page.NextBefore == nil {
				break
			}
			if *page.NextBefore != page.Items[len(page.Items)-1].Offset {
				t.Fatalf("next_before %d is not the page's last offset %v", *page.NextBefore, offsets(page.Items))
			}
			query = fmt.Sprintf("?order=newest&limit=3&before=%d", *page.NextBefore)
		}
		want := offsets(oldest.Items)
		slices.Reverse(want)
		if !slices.Equal(walked, want) {
			t.Fatalf("walking newest first gave %v, want %v", walked, want)
		}

		// Filters apply newest first too.
		page := tb.listEvents(t, owner, "?order=newest&location_id="+harbour.ID+"&type=test.kind0")
		if len(page.Items) != 3 || page.NextBefore != nil {
			t.Fatalf("harbour's test.kind0 entries newest first: %+v", page)
		}
		for i, e := range page.Items {
			if e.LocationID == nil || *e.LocationID != harbour.ID || e.Type != "test.kind0" || (i > 0 && e.Offset > page.Items[i-1].Offset) {
				t.Errorf("entry %d of the filtered page: %+v", i, e)
			}
		}
	})
}

func TestEvents_CarryTheNameTheirLocationHadWhenWritten(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Harbour Street", "PNL-EVT-NAME")
		tb.appendEvents(t, loc.ID, 1)
		if r := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, owner, map[string]any{"name": "Harbour St."}); r.status != http.StatusOK {
			t.Fatalf("rename: %d %s", r.status, r.body)
		}
		tb.appendEvents(t, loc.ID, 1)

		r := tb.do(t, "GET", "/v1/events", owner, nil)
		if !strings.Contains(string(r.body), `"location_name":null`) {
			t.Errorf("an account-wide entry lacks location_name null: %s", r.body)
		}
		var page eventPage
		r.json(t, &page)
		var names []string
		for _, e := range page.Items {
			switch {
			case e.LocationID == nil && e.LocationName != nil:
				t.Errorf("account-wide entry %d is named %q", e.Offset, *e.LocationName)
			case e.LocationID != nil && e.LocationName == nil:
				t.Errorf("entry %d at a location has no location_name", e.Offset)
			case e.LocationID != nil:
				names = append(names, *e.LocationName)
			}
		}
		if !slices.Equal(names, []string{"Harbour Street", "Harbour St."}) {
			t.Errorf("the location's entries are named %q, want the name before and after the rename", names)
		}
	})
}

func TestEvents_RefuseAnOrderTheyCannotServe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		for _, tc := range []struct{ query, field, says string }{
			{"?order=sideways", "order", "newest or oldest"},
			{"?order=NEWEST", "order", "newest or oldest"},
			{"?order=newest&after=3", "order", "after"},
			{"?order=oldest&before=3", "order", "before"},
			{"?order=newest&order=oldest", "order", "more than once"},
			{"?order=newest&before=-1", "before", "non-negative"},
			{"?order=newest&limit=1001", "limit", "1 to 1000"},
		} {
			r := tb.do(t, "GET", "/v1/events"+tc.query, owner, nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("GET /v1/events%s: %d %s, want 400", tc.query, r.status, r.body)
				continue
			}
			p := r.problem(t)
			if p.Code != "invalid_request" || p.Field != tc.field || !strings.Contains(p.Detail, tc.says) {
				t.Errorf("GET /v1/events%s: problem %+v, want field %s saying %q", tc.query, p, tc.field, tc.says)
			}
		}
		// order=newest on an empty log is an empty page with nothing older.
		other := tb.signIn(t, "owner@b.test").AccessToken
		if page := tb.listEvents(t, other, "?order=newest"); len(page.Items) != 0 || page.NextBefore != nil || page.NextAfter != nil {
			t.Errorf("an empty log newest first: %+v", page)
		}
	})
}
