package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestTwoNodes_CommandsFollowThePanel: a command to a panel on the other
// node crosses the bus to it; when the panel moves to the other node the
// next command follows it there; a kick sent on one node drops the panel
// on the other; and a panel recorded on a node that died is reported
// disconnected at once, not after a wait.
func TestTwoNodes_CommandsFollowThePanel(t *testing.T) {
	backends := dbtest.Backends(t)
	// The last backend is MySQL when it is configured: two nodes of a
	// deployment share a server database.
	b := backends[len(backends)-1]
	nats := startNATSProcess(t)
	cfg := apptest.Config(t, b)
	cfg.NATSURL = nats.url()
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	nodeA, nodeB := apptest.Start(t, cfgA), apptest.Start(t, cfgB)

	acct, token := nodeA.Account(t, "Routing")
	loc, cred := nodeA.Location(t, acct.ID, "Harbour")
	locID, panelID := loc.Location.ID, loc.Panel.ID
	nodeA.MarkUsersSynced(t, locID)
	const bound = 3 * time.Second
	send := func(from *apptest.Node) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		began := time.Now()
		_, err := from.App.Link().Send(ctx, panelID, panel.CmdStatusGet, nil)
		if took := time.Since(began); took > bound {
			t.Errorf("a command from %s took %v", from.App.NodeID(), took)
		}
		return err
	}
	wantCode := func(step string, err error, code string) {
		t.Helper()
		if f, ok := panel.AsCommandFailure(err); !ok || f.Code != code {
			t.Fatalf("%s: %v, want %s", step, err, code)
		}
	}

	p, stopOnB := nodeB.Panel(t, cred, sim.Options{Users: 1})
	if err := send(nodeA); err != nil {
		t.Fatalf("a command from node A to the panel on node B: %v", err)
	}

	stopOnB()
	nodeA.WaitPanel(t, locID, models.PanelDisconnected)
	wantCode("a command to a panel no node holds", send(nodeA), panel.FailDisconnected)

	nodeA.RunPanel(t, p)
	if !nodeA.App.Link().ConnectedHere(panelID) {
		t.Fatal("the panel did not move to node A")
	}
	if err := send(nodeB); err != nil {
		t.Fatalf("a command from node B to the panel that moved to node A: %v", err)
	}

	if r := nodeB.Do(t, "POST", "/v1/locations/"+locID+"/panel/credential/revoke", token, nil); r.Status != http.StatusOK {
		t.Fatalf("revoke on node B: %d %s", r.Status, r.Body)
	}
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		return !nodeA.App.Link().ConnectedHere(panelID), "node A still holds the panel whose credential node B revoked"
	})

	// A node that died with the panel left it recorded there; no node
	// listens on its subject any more.
	if _, err := nodeB.Store.MarkPanelConnected(context.Background(), panelID, models.NewID(), "node-crashed", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	wantCode("a command to a panel recorded on a dead node", send(nodeB), panel.FailDisconnected)
}
