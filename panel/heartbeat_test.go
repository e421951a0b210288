package panel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

type discardPublisher struct{}

func (discardPublisher) PublishEvents(context.Context, []models.Event) {}

// A node whose heartbeat lapsed (a stalled database, say) may find that
// another node marked its panels disconnected; on its next beats it marks
// the ones it still holds connected again, and leaves alone a panel whose
// link has moved on.
func TestHeartbeat_ReassertsHeldPanelsAfterALapse(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, b)
			if err := migrations.Up(ctx, db); err != nil {
				t.Fatal(err)
			}
			store := models.NewStore(db)
			acct, err := store.CreateAccount(ctx, "Acme")
			if err != nil {
				t.Fatal(err)
			}
			name := "HQ"
			loc, err := store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
				Settings: models.LocationSettings{Name: &name}, PanelSerial: "HB-0001", SecretHash: strings.Repeat("0", 64),
			})
			if err != nil {
				t.Fatal(err)
			}
			panelID := loc.Panel.ID
			now := time.Now().UTC()
			mark := func(link, node string) {
				t.Helper()
				if _, err := store.MarkPanelConnected(ctx, panelID, link, node, now); err != nil {
					t.Fatal(err)
				}
				// Another node's sweep found this node silent.
				if _, err := store.MarkPanelDisconnected(ctx, panelID, link, now); err != nil {
					t.Fatal(err)
				}
			}
			connection := func() models.PanelConnection {
				t.Helper()
				p, err := store.PanelBySerial(ctx, "HB-0001")
				if err != nil {
					t.Fatal(err)
				}
				return p.Connection
			}

			l := &Link{cfg: LinkConfig{NodeID: "node-x"}, store: store, events: models.NewEventLog(store, discardPublisher{}), conns: map[string]*deviceConn{}}
			l.cfg.setDefaults()
			l.log = l.cfg.Logger
			held := newDeviceConn("link-1", panelIdentity{PanelID: panelID, AccountID: acct.ID, LocationID: loc.Location.ID, Serial: "HB-0001"}, newFakeSocket(), 1, time.Second)
			l.conns[panelID] = held

			mark("link-1", "node-x")
			l.reassertHeld(ctx, now)
			if got := connection(); got != models.PanelConnected {
				t.Fatalf("held panel is %s after the reassertion, want connected", got)
			}
			events, err := store.ListEvents(ctx, models.EventQuery{AccountID: acct.ID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) == 0 || events[len(events)-1].Type != "panel.connected" {
				t.Fatalf("no panel.connected event for the reassertion: %+v", events)
			}

			// The panel has since linked elsewhere and dropped again: this
			// node's old link no longer speaks for it.
			mark("link-2", "node-y")
			l.reassertHeld(ctx, now)
			if got := connection(); got != models.PanelDisconnected {
				t.Fatalf("a panel whose link moved on is %s, want disconnected", got)
			}
		})
	}
}

// An outage of the database silences every node at once. When it ends,
// the first node to beat again must not blame its peer, whose heartbeat
// looks old only because it could not write either; a node that really
// died in the meantime is still found, once the nodes back have beaten
// for as long as a peer may be silent.
func TestHeartbeat_AfterADatabaseOutage_PeersAreNotBlamedButADeadNodeIs(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			store := dbtest.OpenMigrated(t, b)
			acct, err := store.CreateAccount(ctx, "Acme")
			if err != nil {
				t.Fatal(err)
			}
			panelOf := map[string]models.LocationView{}
			for _, node := range []string{"node-a", "node-b", "node-c"} {
				name := "Linked to " + node
				loc, err := store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
					Settings: models.LocationSettings{Name: &name}, PanelSerial: "HB-" + node, SecretHash: strings.Repeat("0", 64),
				})
				if err != nil {
					t.Fatal(err)
				}
				panelOf[node] = loc
			}
			connect := func(node string) {
				t.Helper()
				if _, err := store.MarkPanelConnected(ctx, panelOf[node].Panel.ID, "link-of-"+node, node, time.Now().UTC()); err != nil {
					t.Fatal(err)
				}
			}
			connection := func(node string) (models.PanelConnection, error) {
				p, err := store.PanelBySerial(ctx, "HB-"+node)
				return p.Connection, err
			}

			// Each node has its own connection pool, and so its own view
			// of the outage.
			const lostAfter = 400 * time.Millisecond
			type node struct {
				link   *Link
				outage *dbtest.Outage
			}
			start := func(id string) node {
				db := dbtest.Open(t, b)
				outage := dbtest.InjectOutage(t, db)
				nodeStore := models.NewStore(db)
				l, err := NewLink(LinkConfig{NodeID: id, Heartbeat: 50 * time.Millisecond, NodeLostAfter: lostAfter},
					nodeStore, models.NewEventLog(nodeStore, discardPublisher{}), newFakeBus())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					l.Close(stop)
				})
				return node{link: l, outage: outage}
			}
			first, second := start("node-a"), start("node-b")
			judging := func(n node) func() (bool, string) {
				return func() (bool, string) {
					return n.link.fair.Over(time.Now(), lostAfter), n.link.cfg.NodeID + " does not judge its peers yet"
				}
			}
			waitFor(t, 10*time.Second, judging(first))
			waitFor(t, 10*time.Second, judging(second))
			// Each takes its panel's link, as a panel linking to it does.
			for _, n := range []node{first, second} {
				id := n.link.cfg.NodeID
				v := panelOf[id]
				n.link.mu.Lock()
				n.link.conns[v.Panel.ID] = newDeviceConn("link-of-"+id, panelIdentity{PanelID: v.Panel.ID, AccountID: acct.ID, LocationID: v.Location.ID, Serial: "HB-" + id}, newFakeSocket(), 1, time.Second)
				n.link.mu.Unlock()
				connect(id)
			}

			// A third node beats once and links its panel, then dies
			// without closing, just as the database goes away.
			now, err := store.Now(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.NodeHeartbeat(ctx, "node-c", "", now); err != nil {
				t.Fatal(err)
			}
			connect("node-c")
			first.outage.Begin()
			second.outage.Begin()
			for _, n := range []node{first, second} {
				waitFor(t, 10*time.Second, func() (bool, string) {
					return !n.link.fair.Over(time.Now(), 0), n.link.cfg.NodeID + " has not noticed the outage"
				})
			}
			// The outage lasts long enough for every heartbeat to look
			// lost when it ends.
			time.Sleep(2 * lostAfter)
			// Node a reaches the database first, and beats again before
			// node b can.
			first.outage.End()
			waitFor(t, 10*time.Second, func() (bool, string) {
				return first.link.fair.Over(time.Now(), 0), "node-a has not beaten since the outage"
			})
			second.outage.End()

			waitFor(t, 10*time.Second, func() (bool, string) {
				got, err := connection("node-c")
				return err == nil && got == models.PanelDisconnected, fmt.Sprintf("the dead node's panel is %s (%v)", got, err)
			})
			waitFor(t, 10*time.Second, judging(first))
			waitFor(t, 10*time.Second, judging(second))
			for _, id := range []string{"node-a", "node-b"} {
				if got, err := connection(id); err != nil || got != models.PanelConnected {
					t.Errorf("the panel of %s, which beat again after the outage, is %s (%v)", id, got, err)
				}
			}
			log, err := store.ListEvents(ctx, models.EventQuery{AccountID: acct.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var lost []string
			for _, e := range log {
				if e.Type == models.EventPanelDisconnected && strings.Contains(e.Data, "node_lost") {
					lost = append(lost, e.Data)
				}
			}
			if len(lost) != 1 || !strings.Contains(lost[0], "HB-node-c") {
				t.Fatalf("node_lost disconnections %q, want the dead node's panel only", lost)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after within with
// what cond last said was missing.
func waitFor(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSweepLostNodes_MarksAFleetInBatchesOfOneTransaction: one sweep marks
// every panel a dead node held, over several transactions of sweepBatch,
// each panel with its one node_lost entry; the panel it held that linked
// again to a live node keeps its new link and gets none.
func TestSweepLostNodes_MarksAFleetInBatchesOfOneTransaction(t *testing.T) {
	l, _, p := fakeBusLink(t)
	ctx := context.Background()
	now, err := l.store.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.store.NodeHeartbeat(ctx, "node-dead", "", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	const fleet = 2*sweepBatch + 3
	links := []models.PanelLink{{PanelID: p.ID, LinkID: "link-hq", At: now}}
	for i := range fleet - 1 {
		name := fmt.Sprintf("Site %04d", i)
		loc, err := l.store.CreateLocation(ctx, models.SystemActor(p.AccountID, "test"), models.NewLocation{
			Settings: models.LocationSettings{Name: &name}, PanelSerial: fmt.Sprintf("SW-%04d", i), SecretHash: strings.Repeat("0", 64),
		})
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, models.PanelLink{PanelID: loc.Panel.ID, LinkID: fmt.Sprintf("link-%04d", i), At: now})
	}
	if _, err := l.store.MarkPanelsConnected(ctx, "node-dead", links); err != nil {
		t.Fatal(err)
	}
	// The first panel linked again to this node before the sweep.
	if _, err := l.store.MarkPanelConnected(ctx, p.ID, "link-hq-again", "node-x", now); err != nil {
		t.Fatal(err)
	}
	offset, err := l.store.LastEventOffset(ctx, p.AccountID)
	if err != nil {
		t.Fatal(err)
	}

	l.sweepLostNodes(ctx, now)

	left, err := l.store.PanelsOfLostNodes(ctx, now.Add(-l.cfg.NodeLostAfter), fleet)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d of the dead node's panels still connected after one sweep", len(left))
	}
	if node, connected, err := l.store.PanelRoute(ctx, p.ID); err != nil || node != "node-x" || !connected {
		t.Errorf("the panel that linked again routes to (%q, %v, %v), want node-x", node, connected, err)
	}
	events, err := l.store.ListEvents(ctx, models.EventQuery{AccountID: p.AccountID, After: &offset, Limit: 2 * fleet})
	if err != nil {
		t.Fatal(err)
	}
	serials := map[string]int{}
	for _, e := range events {
		if e.Type != models.EventPanelDisconnected || !strings.Contains(e.Data, `"reason":"node_lost"`) {
			t.Fatalf("unexpected entry %s %s", e.Type, e.Data)
		}
		serials[e.Data]++
	}
	if len(events) != fleet-1 || len(serials) != fleet-1 {
		t.Fatalf("%d node_lost entries for %d panels, want one for each of the %d panels still on the dead node", len(events), len(serials), fleet-1)
	}
}
