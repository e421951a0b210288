package panel

import (
	"context"
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
			held := newDeviceConn("link-1", panelIdentity{PanelID: panelID, AccountID: acct.ID, LocationID: loc.Location.ID, Serial: "HB-0001"}, nil, 1)
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
