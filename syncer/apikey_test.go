package syncer_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// newAPIKey creates a key with scopes read and sync as the owner token and
// returns its prefix and secret.
func newAPIKey(t *testing.T, n *apptest.Node, owner, name string) (prefix, secret string) {
	t.Helper()
	r := n.Do(t, "POST", "/v1/api-keys", owner, map[string]any{"name": name, "scopes": []string{"read", "sync"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create API key: %d %s", r.Status, r.Body)
	}
	var out struct {
		APIKey struct {
			Prefix string `json:"prefix"`
		} `json:"api_key"`
		Secret string `json:"secret"`
	}
	r.JSON(t, &out)
	return out.APIKey.Prefix, out.Secret
}

func TestSyncUsers_RequestedWithAPIKey_RunsWithTriggerAPIAndNamesTheKey(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 5}, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		prefix, key := newAPIKey(t, n, tb.token, "Nightly import")
		// The panel's first link synced its five users; one more is added
		// at the keypad for the key's sync to find.
		if err := tb.panel.PutUser(panel.User{Number: 60, Name: "Night Guard", Authority: panel.AuthorityStandard, Partitions: []int{1}}); err != nil {
			t.Fatal(err)
		}

		started := n.Sync(t, key, locID, "users")
		if started.Run.Trigger != "api" {
			t.Fatalf("run trigger %q, want api", started.Run.Trigger)
		}
		run := n.WaitRun(t, key, started.Run.ID)
		if run.State != "succeeded" || run.Changes.Added != 1 || run.Trigger != "api" {
			t.Fatalf("run %+v", run)
		}
		events := n.Events(t, key, locID)
		want := fmt.Sprintf("User sync requested by API key Nightly import (%s)", prefix)
		var requested []string
		for _, e := range events {
			if strings.Contains(e.Message+string(e.Data), key[len(prefix)+1:]) {
				t.Fatalf("an event carries the key's secret: %+v", e)
			}
			if e.Type == "sync.requested" && e.RunID != nil && *e.RunID == run.ID {
				requested = append(requested, e.Message)
			}
		}
		if fmt.Sprint(requested) != fmt.Sprint([]string{want}) {
			t.Fatalf("sync.requested messages %q, want %q", requested, want)
		}
	})
}

func TestBatch_StartedWithAPIKey_ChildRunsHaveTriggerAPI(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		n := tb.node
		first := n.FirstSync(t, tb.token, tb.loc.Location.ID)
		_, key := newAPIKey(t, n, tb.token, "Fleet script")
		f := &fleet{node: n, acct: tb.acct, token: key}
		b := f.startBatch(t, map[string]any{"kind": "users", "scope": "all"})
		done := f.waitBatch(t, b.ID)
		if done.Succeeded != 1 {
			t.Fatalf("batch %+v", done)
		}
		r := n.Do(t, "GET", "/v1/runs?location_id="+tb.loc.Location.ID, key, nil)
		var page struct {
			Items []apptest.Run `json:"items"`
		}
		r.JSON(t, &page)
		if len(page.Items) != 2 || page.Items[0].Trigger != "api" || page.Items[1].ID != first.ID {
			t.Fatalf("runs %+v, want the batch's with trigger api after the first sync %s", page.Items, first.ID)
		}
	})
}
