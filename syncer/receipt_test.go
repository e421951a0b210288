package syncer_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// receipt is what the user lookup says a location's panel last sent for a
// person: which run received the user, and when.
type receipt struct {
	RunID          string
	LastReceivedAt time.Time
}

// lookupReceipt looks the one person named q up and returns their receipt
// at the test's location.
func lookupReceipt(t *testing.T, tb *testBundle, q string) receipt {
	t.Helper()
	r := tb.node.Do(t, "GET", "/v1/people?q="+url.QueryEscape(q), tb.token, nil)
	var page struct {
		Items []struct {
			Locations []struct {
				LocationID     string     `json:"location_id"`
				RunID          *string    `json:"run_id"`
				LastReceivedAt *time.Time `json:"last_received_at"`
			} `json:"locations"`
		} `json:"items"`
	}
	r.JSON(t, &page)
	if r.Status != http.StatusOK || len(page.Items) != 1 || len(page.Items[0].Locations) != 1 {
		t.Fatalf("lookup %q: %d %s", q, r.Status, r.Body)
	}
	l := page.Items[0].Locations[0]
	if l.LocationID != tb.loc.Location.ID || l.RunID == nil || l.LastReceivedAt == nil {
		t.Fatalf("lookup %q: %s", q, r.Body)
	}
	return receipt{RunID: *l.RunID, LastReceivedAt: *l.LastReceivedAt}
}

// putLookupUsers puts two users with names the simulated panel's own never
// contain on the panel.
func putLookupUsers(t *testing.T, tb *testBundle) (quentin, rita panel.User) {
	t.Helper()
	quentin = panel.User{Number: 501, Name: "Quentin Zylberg", Email: "quentin@example.com", Authority: panel.AuthorityStandard, Partitions: []int{1}, HasCode: true, Code: "5012"}
	rita = panel.User{Number: 502, Name: "Rita Zylberg", Authority: panel.AuthorityGuest, Partitions: []int{1}, HasCode: true, Code: "5023"}
	for _, u := range []panel.User{quentin, rita} {
		if err := tb.panel.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	return quentin, rita
}

func updatedAt(t *testing.T, tb *testBundle, number int) time.Time {
	t.Helper()
	var row models.PanelUser
	if err := tb.node.Store.DB().Where("location_id = ? AND user_number = ?", tb.loc.Location.ID, number).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	return row.UpdatedAt
}

func TestSyncUsers_StampsEveryUserItReceives_TheLookupShowsRunAndTime(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		// The panel's first connection synced its three users; the two
		// added since come with the next sync.
		quentin, _ := putLookupUsers(t, tb)
		first := syncUsers(t, tb)
		if first.State != "succeeded" || first.Changes.Added != 2 {
			t.Fatalf("first tapped sync %+v", first)
		}
		q1, r1 := lookupReceipt(t, tb, "quentin"), lookupReceipt(t, tb, "rita zyl")
		if q1.RunID != first.ID || r1.RunID != first.ID || q1.LastReceivedAt.IsZero() {
			t.Fatalf("after the first sync: quentin %+v, rita %+v, want run %s", q1, r1, first.ID)
		}
		ritaUpdated := updatedAt(t, tb, 502)

		// An incremental sync receives only what changed at the panel.
		quentin.Name = "Quentin Zylberg-Hart"
		if err := tb.panel.PutUser(quentin); err != nil {
			t.Fatal(err)
		}
		second := syncUsers(t, tb)
		if second.State != "succeeded" || second.Mode != "incremental" || second.Changes.Updated != 1 {
			t.Fatalf("second sync %+v", second)
		}
		q2, r2 := lookupReceipt(t, tb, "quentin"), lookupReceipt(t, tb, "rita zyl")
		if q2.RunID != second.ID || !q2.LastReceivedAt.After(q1.LastReceivedAt) || r2.RunID != r1.RunID || !r2.LastReceivedAt.Equal(r1.LastReceivedAt) {
			t.Fatalf("after an incremental sync: quentin %+v, rita %+v; want quentin on run %s and rita unmoved", q2, r2, second.ID)
		}

		// A full sync receives every user, changed or not; an unchanged
		// one advances its receipt but keeps its updated_at.
		settle(t, tb, map[string]any{"force_update_all": true})
		third := syncUsers(t, tb)
		if third.State != "succeeded" || third.Mode != "full" || third.Changes.Unchanged != 5 {
			t.Fatalf("third sync %+v", third)
		}
		q3, r3 := lookupReceipt(t, tb, "quentin"), lookupReceipt(t, tb, "rita zyl")
		if q3.RunID != third.ID || r3.RunID != third.ID || !r3.LastReceivedAt.After(r2.LastReceivedAt) {
			t.Fatalf("after a full sync: quentin %+v, rita %+v, want both on run %s", q3, r3, third.ID)
		}
		if got := updatedAt(t, tb, 502); !got.Equal(ritaUpdated) {
			t.Fatalf("receiving rita unchanged moved her updated_at from %v to %v", ritaUpdated, got)
		}
	})
}

func TestSyncUsers_HeldRun_StampsItsUsersWhenApplied(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		quentin, _ := putLookupUsers(t, tb)
		first := syncUsers(t, tb)
		if first.State != "succeeded" {
			t.Fatalf("first sync %+v", first)
		}
		settle(t, tb, map[string]any{"auto_apply": false})
		quentin.Authority = panel.AuthorityMaster
		if err := tb.panel.PutUser(quentin); err != nil {
			t.Fatal(err)
		}
		held := syncUsers(t, tb)
		if held.State != "awaiting_apply" {
			t.Fatalf("sync with auto apply off %+v", held)
		}
		// A held run changes nothing, its receipts included.
		if got := lookupReceipt(t, tb, "quentin"); got.RunID != first.ID {
			t.Fatalf("while held quentin shows %+v, want run %s", got, first.ID)
		}
		if r := tb.node.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", tb.token, nil); r.Status != http.StatusOK {
			t.Fatalf("apply: %d %s", r.Status, r.Body)
		}
		if got := lookupReceipt(t, tb, "quentin"); got.RunID != held.ID {
			t.Fatalf("after apply quentin shows %+v, want run %s", got, held.ID)
		}
		if got := lookupReceipt(t, tb, "rita zyl"); got.RunID != first.ID {
			t.Fatalf("after apply rita shows %+v; the held run did not receive her", got)
		}
	})
}
