package panel_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// A command nobody on the bus answers is the panel being offline only
// when no live node holds it. A panel recorded as connected to a node
// whose heartbeat is fresh is out of reach because of the bus (that node
// has not yet subscribed again after a reconnection), and the command is
// a transient bus failure, not a false "the panel is not connected".
func TestSend_NoResponderForAPanelHeldByALiveNode_IsABusFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		store := tb.node.Store
		p, err := store.PanelBySerial(ctx, tb.cred.Serial)
		if err != nil {
			t.Fatal(err)
		}
		send := func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := tb.node.App.Link().Send(ctx, p.ID, panel.CmdStatusGet, nil)
			return err
		}
		code := func(err error) string {
			if f, ok := panel.AsCommandFailure(err); ok {
				return f.Code
			}
			return ""
		}

		if err := send(); code(err) != panel.FailDisconnected {
			t.Errorf("a panel no node holds: %v, want %s", err, panel.FailDisconnected)
		}

		// This node knows the panel it holds: one recorded here that it
		// does not hold has just gone.
		now := time.Now().UTC()
		if _, err := store.MarkPanelConnected(ctx, p.ID, models.NewID(), tb.node.App.NodeID(), now); err != nil {
			t.Fatal(err)
		}
		if err := send(); code(err) != panel.FailDisconnected {
			t.Errorf("a panel recorded on this node that it does not hold: %v, want %s", err, panel.FailDisconnected)
		}

		if err := store.NodeHeartbeat(ctx, "node-elsewhere", "", now); err != nil {
			t.Fatal(err)
		}
		if _, err := store.MarkPanelConnected(ctx, p.ID, models.NewID(), "node-elsewhere", now); err != nil {
			t.Fatal(err)
		}
		err = send()
		if f, ok := panel.AsCommandFailure(err); !ok || f.Code != panel.FailBusUnavailable || !f.Transient() {
			t.Errorf("a panel held by a live node that does not answer on the bus: %v, want %s", err, panel.FailBusUnavailable)
		}

		// A node silent for longer than it takes to be thought lost took
		// its panels' links with it.
		if err := store.NodeHeartbeat(ctx, "node-elsewhere", "", now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := send(); code(err) != panel.FailDisconnected {
			t.Errorf("a panel held by a lost node: %v, want %s", err, panel.FailDisconnected)
		}
	})
}
