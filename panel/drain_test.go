package panel_test

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
)

// closeFrame reads until the server closes and returns its close code and
// reason.
func closeFrame(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
			return ce.Code, ce.Text
		}
	}
}

// countEvents counts the location's events of type typ.
func countEvents(t *testing.T, n *apptest.Node, token, locationID, typ string) int {
	t.Helper()
	count := 0
	for _, e := range n.Events(t, token, locationID) {
		if e.Type == typ {
			count++
		}
	}
	return count
}

func TestDeviceLink_NodeStops_PanelToldWhenToLinkAgain_NoDisconnectionRecorded(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.PanelRelinkSpread = 2 * time.Second
			cfg.NodeHeartbeat = 200 * time.Millisecond
			n := apptest.Start(t, cfg)
			acct, token := n.Account(t, "Acme")
			loc, cred := n.Location(t, acct.ID, "Depot")
			n.MarkUsersSynced(t, loc.Location.ID)
			conn, _, err := dial(t, n.BaseURL, cred.Serial, cred.Secret)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := readFrame(t, conn); err != nil || f.Type != panel.FrameHello {
				t.Fatalf("first frame %+v %v, want hello", f, err)
			}
			n.WaitPanel(t, loc.Location.ID, models.PanelConnected)

			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				n.Stop()
			}()
			code, reason := closeFrame(t, conn)
			ms, err := strconv.Atoi(strings.TrimPrefix(reason, "reconnect_after_ms="))
			if code != 4010 || !strings.HasPrefix(reason, "reconnect_after_ms=") || err != nil || ms < 200 || ms > 2000 {
				t.Fatalf("closed with %d %q, want 4010 and a delay between 200 and 2000 ms", code, reason)
			}
			<-stopped

			// The panel is on its way back: still connected, held by no
			// node, and no disconnection in its Event Log.
			store, err := app.OpenStore(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			v, err := store.LocationByID(t.Context(), loc.Location.ID)
			if err != nil {
				t.Fatal(err)
			}
			if v.Panel.Connection != models.PanelConnected || v.Panel.NodeID != "" {
				t.Fatalf("panel after the node stopped: %s on %q, want connected on no node", v.Panel.Connection, v.Panel.NodeID)
			}
			var disconnections int64
			if err := store.DB().Model(&models.Event{}).Where("location_id = ? AND type = ?", loc.Location.ID, models.EventPanelDisconnected).Count(&disconnections).Error; err != nil {
				t.Fatal(err)
			}
			_ = store.Close()
			if disconnections != 0 {
				t.Fatalf("%d panel.disconnected events right after the stop, want none", disconnections)
			}

			// A node that starts on the same database and does not see
			// the panel again marks it disconnected once it has had its
			// time to link again.
			again := apptest.Start(t, cfg)
			token = again.Token(t, mustOwnerEmail(t, again, acct.ID))
			again.WaitPanel(t, loc.Location.ID, models.PanelDisconnected)
			if got := countEvents(t, again, token, loc.Location.ID, models.EventPanelDisconnected); got != 1 {
				t.Fatalf("%d panel.disconnected events once the panel stayed away, want 1", got)
			}
		})
	}
}

// mustOwnerEmail returns the e-mail of the account's owner.
func mustOwnerEmail(t *testing.T, n *apptest.Node, accountID string) string {
	t.Helper()
	var login models.Login
	if err := n.Store.DB().Where("account_id = ? AND role = ?", accountID, models.RoleOwner).Take(&login).Error; err != nil {
		t.Fatal(err)
	}
	return login.Email
}

func TestDeviceLink_NodeDraining_RefusesLinksWithRetryAfter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.node.App.Link().Drain()
		_, resp, err := dial(t, tb.node.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("dial to a draining node: %v %v, want 503", resp, err)
		}
		if s, _ := strconv.Atoi(resp.Header.Get("Retry-After")); s < 1 || s > 3 {
			t.Fatalf("Retry-After %q, want 1 to 3 seconds", resp.Header.Get("Retry-After"))
		}
		v, _ := tb.node.Store.LocationByID(t.Context(), tb.loc.Location.ID)
		if v.Panel.Connection != models.PanelDisconnected {
			t.Fatalf("a refused link changed the panel: %s", v.Panel.Connection)
		}
	})
}

func TestDeviceLink_LinksFasterThanTheRate_AnsweredRetryAfter(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.PanelLinkRate = 1
			cfg.LogLevel = "debug"
			var logs apptest.Buffer
			n := apptest.StartLogged(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			acct, _ := n.Account(t, "Acme")
			var creds []struct{ serial, secret, loc string }
			for _, name := range []string{"Depot", "Annex"} {
				loc, cred := n.Location(t, acct.ID, name)
				n.MarkUsersSynced(t, loc.Location.ID)
				creds = append(creds, struct{ serial, secret, loc string }{cred.Serial, cred.Secret, loc.Location.ID})
			}
			if _, _, err := dial(t, n.BaseURL, creds[0].serial, creds[0].secret); err != nil {
				t.Fatalf("first link: %v", err)
			}
			// A second link in the same second is over the rate.
			began := time.Now()
			_, resp, err := dial(t, n.BaseURL, creds[1].serial, creds[1].secret)
			if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("second link at once: %v %v, want 503", resp, err)
			}
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if wait < 1 {
				t.Fatalf("Retry-After %q, want at least a second", resp.Header.Get("Retry-After"))
			}
			// Back after the wait asked, it is taken.
			time.Sleep(time.Until(began.Add(time.Duration(wait) * time.Second)))
			if _, _, err := dial(t, n.BaseURL, creds[1].serial, creds[1].secret); err != nil {
				t.Fatalf("link after Retry-After: %v", err)
			}
			n.WaitPanel(t, creds[1].loc, models.PanelConnected)
			// Turning a link away to pace a fleet is the node working as
			// meant, not a server error.
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") {
					t.Errorf("logged as an error: %s", line)
				}
			}
		})
	}
}

// The admission settings reach the link: a rate outside its bounds is
// refused at start.
func TestConfig_PanelLinkSettingsAreChecked(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.PanelLinkRate = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--panel-link-rate") {
		t.Fatalf("rate 0: %v", err)
	}
	cfg = app.DefaultConfig()
	cfg.PanelRelinkSpread = time.Millisecond
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--panel-relink-spread") {
		t.Fatalf("spread 1ms: %v", err)
	}
}
