package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// TestPanelRoute_FollowsThePanelsLinks: the route names the node of the
// panel's current link, follows the panel when a newer link on another
// node replaces it, ignores a replaced link closing, and is gone once the
// current link closes or the credential expires.
func TestPanelRoute_FollowsThePanelsLinks(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		v := createLocation(t, store, mustAccount(t, store, "Route Ltd"), "Depot", "ROUTE-0001")
		panelID := v.Panel.ID
		expect := func(step, wantNode string, wantConnected bool) {
			t.Helper()
			node, connected, err := store.PanelRoute(ctx, panelID)
			if err != nil || node != wantNode || connected != wantConnected {
				t.Fatalf("%s: route (%q, %v, %v), want (%q, %v)", step, node, connected, err, wantNode, wantConnected)
			}
		}
		now := time.Now().UTC()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}

		expect("a panel never linked", "", false)
		_, err := store.MarkPanelConnected(ctx, panelID, "link-1", "node-a", now)
		must(err)
		expect("linked to node A", "node-a", true)
		_, err = store.MarkPanelConnected(ctx, panelID, "link-2", "node-b", now)
		must(err)
		expect("moved to node B", "node-b", true)
		_, err = store.MarkPanelDisconnected(ctx, panelID, "link-1", now)
		must(err)
		expect("after the replaced link on node A closed", "node-b", true)
		_, err = store.MarkPanelDisconnected(ctx, panelID, "link-2", now)
		must(err)
		expect("after its link closed", "", false)

		_, err = store.MarkPanelConnected(ctx, panelID, "link-3", "node-a", now)
		must(err)
		_, err = store.MarkPanelAuthorizationExpired(ctx, panelID)
		must(err)
		expect("with its credential expired", "", false)

		if _, _, err := store.PanelRoute(ctx, "no-such-panel"); models.ErrorCode(err) != models.CodeNotFound {
			t.Fatalf("the route of a panel that does not exist: %v, want not found", err)
		}
	})
}
