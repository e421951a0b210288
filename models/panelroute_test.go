package models_test

import (
	"context"
	"fmt"
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

// TestMarkPanelsConnected_ABatch_RecordsEachLinkAndReportsHowEachStood:
// one batch of new links records each panel's own link and time, and
// reports for each how its link stood before (never linked, held by
// another node, relinking), in the order given; a panel deleted since it
// authenticated comes back empty and the rest are still recorded.
func TestMarkPanelsConnected_ABatch_RecordsEachLinkAndReportsHowEachStood(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "Batch Ltd")
		fresh := createLocation(t, store, acct, "Fresh", "BATCH-0001").Panel.ID
		elsewhere := createLocation(t, store, acct, "Elsewhere", "BATCH-0002").Panel.ID
		relinking := createLocation(t, store, acct, "Relinking", "BATCH-0003").Panel.ID
		earlier := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
		if _, err := store.MarkPanelConnected(ctx, elsewhere, "old-link", "node-b", earlier); err != nil {
			t.Fatal(err)
		}
		if _, err := store.MarkPanelConnected(ctx, relinking, "old-link-2", "node-stopped", earlier); err != nil {
			t.Fatal(err)
		}
		if _, err := store.MarkNodePanelsRelinking(ctx, "node-stopped"); err != nil {
			t.Fatal(err)
		}

		now := time.Now().UTC().Truncate(time.Second)
		links := []models.PanelLink{
			{PanelID: relinking, LinkID: "link-r", At: now.Add(3 * time.Second)},
			{PanelID: "no-such-panel", LinkID: "link-x", At: now},
			{PanelID: fresh, LinkID: "link-f", At: now.Add(time.Second)},
			{PanelID: elsewhere, LinkID: "link-e", At: now.Add(2 * time.Second)},
		}
		before, err := store.MarkPanelsConnected(ctx, "node-a", links)
		if err != nil {
			t.Fatal(err)
		}
		want := []models.PanelHolder{
			{Connection: models.PanelConnected, NodeID: ""},
			{},
			{Connection: models.PanelDisconnected},
			{Connection: models.PanelConnected, NodeID: "node-b"},
		}
		for i := range want {
			if before[i] != want[i] {
				t.Errorf("link %d (%s) stood %+v before, want %+v", i, links[i].LinkID, before[i], want[i])
			}
		}
		for _, l := range []models.PanelLink{links[0], links[2], links[3]} {
			p, err := store.PanelByID(ctx, l.PanelID)
			if err != nil {
				t.Fatal(err)
			}
			if p.Connection != models.PanelConnected || p.NodeID != "node-a" || p.LinkID != l.LinkID {
				t.Errorf("panel of %s: %s on %q through %q, want connected on node-a through it", l.LinkID, p.Connection, p.NodeID, p.LinkID)
			}
			if p.ConnectedAt == nil || !p.ConnectedAt.Equal(l.At) || p.LastSeenAt == nil || !p.LastSeenAt.Equal(l.At) {
				t.Errorf("panel of %s: connected at %v, last seen %v, want both %v", l.LinkID, p.ConnectedAt, p.LastSeenAt, l.At)
			}
		}
		if node, connected, err := store.PanelRoute(ctx, elsewhere); err != nil || node != "node-a" || !connected {
			t.Errorf("the panel taken over from node-b routes to (%q, %v, %v), want node-a", node, connected, err)
		}
	})
}

// TestMarkPanelsDisconnected_ChangesOnlyPanelsStillHeldThroughTheirLink:
// of the links a lost node held, the panels still recorded connected
// through them are marked disconnected, last seen at the sweep's time; one
// that linked again elsewhere meanwhile keeps its new link, and one
// deleted since is skipped without failing the others.
func TestMarkPanelsDisconnected_ChangesOnlyPanelsStillHeldThroughTheirLink(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "Sweep Ltd")
		lost := createLocation(t, store, acct, "Lost", "SWEEP-0001").Panel.ID
		relinking := createLocation(t, store, acct, "Relinking", "SWEEP-0002").Panel.ID
		moved := createLocation(t, store, acct, "Moved", "SWEEP-0003").Panel.ID
		earlier := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
		for _, l := range []models.PanelLink{{PanelID: lost, LinkID: "link-l"}, {PanelID: relinking, LinkID: "link-r"}, {PanelID: moved, LinkID: "link-m"}} {
			if _, err := store.MarkPanelConnected(ctx, l.PanelID, l.LinkID, "node-dead", earlier); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.MarkPanelConnected(ctx, moved, "link-m2", "node-alive", earlier); err != nil {
			t.Fatal(err)
		}

		now := time.Now().UTC().Truncate(time.Second)
		links := []models.PanelLink{{PanelID: moved, LinkID: "link-m"}, {PanelID: "no-such-panel", LinkID: "link-x"}, {PanelID: lost, LinkID: "link-l"}, {PanelID: relinking, LinkID: "link-r"}}
		changed, err := store.MarkPanelsDisconnected(ctx, links, now)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(changed) != "[false false true true]" {
			t.Fatalf("changed %v, want [false false true true]", changed)
		}
		for _, id := range []string{lost, relinking} {
			p, err := store.PanelByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if p.Connection != models.PanelDisconnected || p.NodeID != "" || p.LastSeenAt == nil || !p.LastSeenAt.Equal(now) {
				t.Errorf("panel %s: %s on %q, last seen %v; want disconnected on no node, last seen %v", p.Serial, p.Connection, p.NodeID, p.LastSeenAt, now)
			}
		}
		if node, connected, err := store.PanelRoute(ctx, moved); err != nil || node != "node-alive" || !connected {
			t.Errorf("the panel that linked again routes to (%q, %v, %v), want node-alive", node, connected, err)
		}
	})
}
