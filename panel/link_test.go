package panel_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

type testBundle struct {
	node  *apptest.Node
	token string
	acct  models.Account
	loc   models.LocationView
	cred  sim.Credentials
}

func forEachBackend(t *testing.T, fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			acct, token := node.Account(t, "Acme")
			loc, cred := node.Location(t, acct.ID, "Depot")
			// These tests speak the device protocol by hand and answer no
			// commands: the location's users synced before, so linking is
			// a reconnection that sends the panel nothing of its own.
			node.MarkUsersSynced(t, loc.Location.ID)
			fn(t, &testBundle{node: node, token: token, acct: acct, loc: loc, cred: cred})
		})
	}
}

// dial opens a raw device link, the way a panel's communicator does.
func dial(t *testing.T, base, serial, secret string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(serial+":"+secret)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/device/v1/link", h)
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, resp, err
}

// readFrame reads the next frame, failing the test on a timeout.
func readFrame(t *testing.T, c *websocket.Conn) (panel.Frame, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		return panel.Frame{}, err
	}
	var f panel.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("server sent non-JSON %q", data)
	}
	return f, nil
}

// closeCode reads until the server closes and returns its close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	for {
		_, err := readFrame(t, c)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func TestDeviceLink_WrongCredentials_RefusedAndNothingChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		for name, creds := range map[string][2]string{
			"wrong secret":   {tb.cred.Serial, "psd_wrong"},
			"unknown serial": {"NOPE-0000", tb.cred.Secret},
		} {
			_, resp, err := dial(t, tb.node.BaseURL, creds[0], creds[1])
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s: dial succeeded or answered %v", name, resp)
			}
		}
		v, _ := tb.node.Store.LocationByID(t.Context(), tb.loc.Location.ID)
		if v.Panel.Connection != models.PanelDisconnected || v.Panel.LastSeenAt != nil {
			t.Fatalf("a refused dial changed the panel: %+v", v.Panel)
		}
		if events := tb.node.Events(t, tb.token, tb.loc.Location.ID); len(events) != 0 {
			t.Fatalf("a refused dial wrote events: %+v", events)
		}
		r := tb.node.Do(t, "GET", "/device/v1/link", "", nil)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("a plain GET: %d", r.Status)
		}
	})
}

func TestDeviceLink_RevokedCredential_ShowsAuthorizationExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		conn, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := readFrame(t, conn); err != nil || f.Type != panel.FrameHello || f.CheckinIntervalS != 1800 {
			t.Fatalf("hello: %+v %v", f, err)
		}
		n.WaitPanel(t, locID, models.PanelConnected)

		r := n.Do(t, "POST", "/v1/locations/"+locID+"/panel/credential/revoke", tb.token, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"connection":"authorization_expired"`) {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if code := closeCode(t, conn); code != 4003 {
			t.Fatalf("revoked panel closed with %d, want 4003", code)
		}
		revoked := false
		for _, e := range n.Events(t, tb.token, locID) {
			revoked = revoked || (e.Type == "panel.authorization_expired" && e.Severity == "error")
		}
		if !revoked {
			t.Fatal("revocation wrote no panel.authorization_expired event")
		}
		if _, resp, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret); err == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked credential dial: %v %v", resp, err)
		}
		n.WaitPanel(t, locID, models.PanelAuthorizationExpired)
		sync := n.Do(t, "POST", "/v1/locations/"+locID+"/sync", tb.token, map[string]string{"kind": "users"})
		if sync.Status != http.StatusConflict || !strings.Contains(string(sync.Body), `"code":"panel_authorization_expired"`) {
			t.Fatalf("sync with an expired credential: %d %s", sync.Status, sync.Body)
		}

		// A new credential brings the panel back.
		rot := n.Do(t, "POST", "/v1/locations/"+locID+"/panel/credential", tb.token, nil)
		var out struct {
			DeviceSecret string `json:"device_secret"`
		}
		rot.JSON(t, &out)
		if rot.Status != http.StatusOK || !strings.HasPrefix(out.DeviceSecret, "psd_") {
			t.Fatalf("rotate: %d %s", rot.Status, rot.Body)
		}
		if _, _, err := dial(t, n.BaseURL, tb.cred.Serial, out.DeviceSecret); err != nil {
			t.Fatalf("dial with the new secret: %v", err)
		}
		n.WaitPanel(t, locID, models.PanelConnected)
	})
}

func TestDeviceLink_MalformedFrames_GetErrorFramesThenClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n := tb.node
		conn, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(t, conn); err != nil {
			t.Fatal(err)
		}
		bad := []string{
			`not json`,
			`{"type":"teleport"}`,
			`{"type":"event","event":{"kind":"armed","armed_state":"sideways"}}`,
			`{"type":"checkin"}`,
			`{"type":"result"}`,
			`{}`,
		}
		for _, frame := range bad {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
				t.Fatal(err)
			}
			f, err := readFrame(t, conn)
			if err != nil || f.Type != panel.FrameErrorType || f.Code != "bad_frame" || f.Message == "" {
				t.Fatalf("after %s: %+v %v", frame, f, err)
			}
		}
		// A valid frame still works on the same connection.
		ok := `{"type":"event","event":{"kind":"trouble","trouble":"ac_failure"}}`
		if err := conn.WriteMessage(websocket.TextMessage, []byte(ok)); err != nil {
			t.Fatal(err)
		}
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			for _, e := range n.Events(t, tb.token, tb.loc.Location.ID) {
				if e.Type == "panel.trouble" && e.Message == "Trouble at the panel: AC power failure" && e.Severity == "warning" {
					return true, ""
				}
			}
			return false, "no panel.trouble event"
		})
		// Past the limit the server closes with a policy violation.
		for range 4 {
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{`))
		}
		if code := closeCode(t, conn); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want %d", code, websocket.ClosePolicyViolation)
		}
		n.WaitPanel(t, tb.loc.Location.ID, models.PanelDisconnected)

		// An oversized frame is refused by size.
		conn2, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn2.WriteMessage(websocket.TextMessage, []byte(`{"type":"checkin","pad":"`+strings.Repeat("x", panel.MaxFrameBytes)+`"}`))
		if code := closeCode(t, conn2); code != websocket.CloseMessageTooBig {
			t.Fatalf("oversized frame closed with %d", code)
		}
		// The node still serves.
		if r := n.Do(t, "GET", "/v1/locations/"+tb.loc.Location.ID, tb.token, nil); r.Status != http.StatusOK {
			t.Fatalf("node after bad frames: %d", r.Status)
		}
	})
}

// TestDeviceLink_ControlCharactersInText_FrameRefused: a trouble a panel
// reports becomes an Event Log message, so one with a control character is
// refused like any malformed frame, and nothing is written.
func TestDeviceLink_ControlCharactersInText_FrameRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n := tb.node
		conn, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(t, conn); err != nil {
			t.Fatal(err)
		}
		n.WaitPanel(t, tb.loc.Location.ID, models.PanelConnected)
		before := len(n.Events(t, tb.token, tb.loc.Location.ID))
		for _, frame := range []string{
			`{"type":"event","event":{"kind":"trouble","trouble":"ac_failure\nAlarm in zone 1"}}`,
			`{"type":"event","event":{"kind":"trouble","trouble":"low\u0007battery"}}`,
			`{"type":"checkin","status":{"partitions":[{"number":1,"armed_state":"disarmed"}],"troubles":["tamper\r\n"]}}`,
			`{"type":"checkin","status":{"partitions":[{"number":1,"armed_state":"disarmed"}],"battery":"o\u001bk"}}`,
		} {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
				t.Fatal(err)
			}
			f, err := readFrame(t, conn)
			if err != nil || f.Type != panel.FrameErrorType || f.Code != "bad_frame" || !strings.Contains(f.Message, "control characters") {
				t.Fatalf("after %s: %+v %v", frame, f, err)
			}
		}
		// A clean trouble is still recorded, and it is the only new event.
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"event","event":{"kind":"trouble","trouble":"ac_failure"}}`)); err != nil {
			t.Fatal(err)
		}
		var events []apptest.Event
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			events = n.Events(t, tb.token, tb.loc.Location.ID)
			return len(events) > before, "no event for the clean trouble"
		})
		if got := events[len(events)-1]; len(events) != before+1 || got.Message != "Trouble at the panel: AC power failure" {
			t.Fatalf("events after the refused frames: %+v", events[before:])
		}
	})
}

func TestDeviceLink_SecondConnection_ReplacesTheFirst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		first, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		n.WaitPanel(t, locID, models.PanelConnected)
		second, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if code := closeCode(t, first); code != 4000 {
			t.Fatalf("replaced connection closed with %d, want 4000", code)
		}
		// The replaced connection's end must not mark the panel offline.
		time.Sleep(200 * time.Millisecond)
		n.WaitPanel(t, locID, models.PanelConnected)
		if f, err := readFrame(t, second); err != nil || f.Type != panel.FrameHello {
			t.Fatalf("second connection: %+v %v", f, err)
		}
		_ = second.Close()
		n.WaitPanel(t, locID, models.PanelDisconnected)
	})
}

func TestDeviceLink_ArmedEvent_UpdatesTheLocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		p, _ := n.Panel(t, tb.cred, sim.Options{})
		if err := p.SetArmed(0, panel.ArmAway); err != nil {
			t.Fatal(err)
		}
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			r := n.Do(t, "GET", "/v1/locations/"+locID, tb.token, nil)
			return strings.Contains(string(r.Body), `"armed_state":"armed_away"`), string(r.Body)
		})
		found := false
		for _, e := range n.Events(t, tb.token, locID) {
			if e.Type == "panel.armed" && strings.Contains(e.Message, "rmed away") && !strings.Contains(e.Message, "armed_away") {
				found = true
			}
		}
		if !found {
			t.Fatal("no panel.armed event saying armed away")
		}
	})
}

func TestDeviceLink_PanelEvents_NameTheUserPartitionAndZone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		ctx := t.Context()
		// What earlier syncs recorded: user 6 by name, and a panel of two
		// partitions with a named zone.
		err := n.Store.ApplyPanelUsers(ctx, locID, []models.PanelUser{
			{ID: models.NewID(), LocationID: locID, UserNumber: 6, Name: "Anna Berg", Authority: panel.AuthorityStandard, Partitions: "1,2"},
		}, nil, nil, models.UsersReceipt{})
		if err != nil {
			t.Fatal(err)
		}
		err = n.Store.ApplyPanelConfig(ctx, []models.PanelConfigItem{
			{ID: models.NewID(), LocationID: locID, Kind: "partition", Number: 1, Name: "House"},
			{ID: models.NewID(), LocationID: locID, Kind: "partition", Number: 2, Name: "Garage"},
			{ID: models.NewID(), LocationID: locID, Kind: "zone", Number: 3, Name: "Garage Door", Type: "door", Partition: 2},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := readFrame(t, conn); err != nil || f.Type != panel.FrameHello {
			t.Fatalf("hello: %+v %v", f, err)
		}
		// The hello comes as soon as the link is taken; its panel.connected
		// entry once it is recorded.
		n.WaitPanel(t, locID, models.PanelConnected)
		before := len(n.Events(t, tb.token, locID))
		frames := []struct{ frame, want string }{
			{`{"kind":"armed","partition":2,"user_number":6,"armed_state":"armed_away"}`, "Partition 2 (Garage) armed away by Anna Berg (user 6)"},
			{`{"kind":"disarmed","partition":2,"user_number":21}`, "Partition 2 (Garage) disarmed by user 21"},
			{`{"kind":"alarm","partition":2,"zone":3}`, "Alarm in zone 3 (Garage Door), partition 2 (Garage)"},
			{`{"kind":"user_changed","user_number":6}`, "Anna Berg (user 6) was changed at the keypad"},
			{`{"kind":"user_changed","user_number":21}`, "User 21 was changed at the keypad"},
		}
		for _, f := range frames {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"event","event":`+f.frame+`}`)); err != nil {
				t.Fatal(err)
			}
		}
		var events []apptest.Event
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			events = n.Events(t, tb.token, locID)
			return len(events) >= before+len(frames), "the panel's events are not all recorded"
		})
		for i, f := range frames {
			if got := events[before+i].Message; got != f.want {
				t.Errorf("event %s says %q, want %q", f.frame, got, f.want)
			}
		}
	})
}

// The bus may deliver a connection's takeover notice late, after a newer
// connection has replaced it; a notice from an older connection must not
// drop the newer one.
func TestDeviceLink_LateTakeoverFromAnOlderConnection_IsIgnored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n, locID, panelID := tb.node, tb.loc.Location.ID, tb.loc.Panel.ID
		conn, _, err := dial(t, n.BaseURL, tb.cred.Serial, tb.cred.Secret)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		n.WaitPanel(t, locID, models.PanelConnected)
		if f, err := readFrame(t, conn); err != nil || f.Type != panel.FrameHello {
			t.Fatalf("hello: %+v %v", f, err)
		}
		// A takeover notice published on the node that holds the panel
		// reaches its link before PublishPanelControl returns.
		notify := func(connectedAt time.Time) {
			t.Helper()
			ctl := bus.PanelControl{Op: bus.ControlTakeover, LinkID: "another-link", ConnectedAt: connectedAt}
			if err := n.App.Bus().PublishPanelControl(panelID, ctl); err != nil {
				t.Fatal(err)
			}
		}

		notify(time.Now().Add(-time.Minute))
		// The connection still answers: a malformed frame gets an error
		// frame, not the close a dropped connection would send.
		if err := conn.WriteMessage(websocket.TextMessage, []byte("not json")); err != nil {
			t.Fatal(err)
		}
		for {
			// Commands the node starts for the new panel may come first.
			f, err := readFrame(t, conn)
			if err != nil {
				t.Fatalf("a takeover from an older connection dropped the panel's current one: %v", err)
			}
			if f.Type == panel.FrameErrorType {
				break
			}
		}
		if !n.App.Link().ConnectedHere(panelID) {
			t.Fatal("a takeover from an older connection dropped the panel's current one")
		}
		n.WaitPanel(t, locID, models.PanelConnected)

		notify(time.Now().Add(time.Minute))
		if code := closeCode(t, conn); code != 4000 {
			t.Fatalf("a takeover from a newer connection closed with %d, want 4000", code)
		}
	})
}

// A node that died without closing its links leaves its panels recorded
// as connected; the nodes still alive find them by its silent heartbeat
// and mark them disconnected, while their own panels stay connected.
func TestHeartbeat_PanelsOfALostNode_AreMarkedDisconnected(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.NodeHeartbeat = 100 * time.Millisecond
			n := apptest.Start(t, cfg)
			acct, token := n.Account(t, "Acme")
			live, liveCred := n.Location(t, acct.ID, "Linked here")
			orphan, _ := n.Location(t, acct.ID, "Linked to a dead node")

			_, stop := n.Panel(t, liveCred, sim.Options{})
			defer stop()
			n.WaitPanel(t, live.Location.ID, models.PanelConnected)
			// The other panel was linked to a node that crashed and never
			// wrote another heartbeat.
			if _, err := n.Store.MarkPanelConnected(context.Background(), orphan.Panel.ID, "link-of-a-dead-node", "crashed-node", time.Now().UTC()); err != nil {
				t.Fatal(err)
			}

			n.WaitPanel(t, orphan.Location.ID, models.PanelDisconnected)
			found := false
			for _, e := range n.Events(t, token, orphan.Location.ID) {
				if e.Type == "panel.disconnected" && strings.Contains(e.Message, "stopped answering") {
					found = true
				}
			}
			if !found {
				t.Fatal("no panel.disconnected event saying the server stopped answering")
			}
			// Several heartbeats later the live panel is still connected.
			time.Sleep(500 * time.Millisecond)
			r := n.Do(t, "GET", "/v1/locations/"+live.Location.ID, token, nil)
			if !strings.Contains(string(r.Body), `"connection":"connected"`) {
				t.Fatalf("a panel linked to a live node was marked: %s", r.Body)
			}
		})
	}
}
