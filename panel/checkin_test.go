package panel_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// The tests in this file cover check-ins: one that reports the status
// stored says only that the panel is alive, and leaves no Event Log entry.

// Statuses a panel reports in these tests.
var (
	disarmed  = panel.Status{Partitions: []panel.PartitionStatus{{Number: 1, ArmedState: panel.ArmDisarmed, Ready: true}}, ACPower: true, Battery: "ok"}
	away      = panel.Status{Partitions: []panel.PartitionStatus{{Number: 1, ArmedState: panel.ArmAway, Ready: true}}, ACPower: true, Battery: "ok"}
	awayACOff = panel.Status{
		Partitions: []panel.PartitionStatus{{Number: 1, ArmedState: panel.ArmAway, Ready: true}},
		Troubles:   []string{"ac_failure"}, Battery: "ok",
	}
)

// linkedPanel dials a raw device link for the bundle's panel and waits
// until it is recorded connected.
func linkedPanel(t *testing.T, tb *testBundle) *websocket.Conn {
	t.Helper()
	conn, _, err := dial(t, tb.node.BaseURL, tb.cred.Serial, tb.cred.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(t, conn); err != nil || f.Type != panel.FrameHello {
		t.Fatalf("hello: %+v %v", f, err)
	}
	tb.node.WaitPanel(t, tb.loc.Location.ID, models.PanelConnected)
	return conn
}

func sendFrame(t *testing.T, conn *websocket.Conn, f panel.Frame) {
	t.Helper()
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, data); err != nil {
		t.Fatal(err)
	}
}

func checkIn(t *testing.T, conn *websocket.Conn, st panel.Status) {
	t.Helper()
	sendFrame(t, conn, panel.Frame{Type: panel.FrameCheckin, Status: &st})
}

// checkins reads the node's check-in counter from /metrics: changed and
// unchanged check-ins recorded since it started.
func checkins(t *testing.T, n *apptest.Node) (changed, unchanged int) {
	t.Helper()
	resp, err := http.Get("http://" + n.App.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	value := func(result string) int {
		prefix := `panelsync_panel_checkins_total{result="` + result + `"} `
		for line := range strings.SplitSeq(string(body), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				v, err := strconv.ParseFloat(rest, 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				return int(v)
			}
		}
		t.Fatalf("/metrics has no %s", strings.TrimSpace(prefix))
		return 0
	}
	return value("changed"), value("unchanged")
}

// waitCheckins waits until the node has recorded the check-ins given, so
// that whatever they wrote is in the database.
func waitCheckins(t *testing.T, n *apptest.Node, changed, unchanged int) {
	t.Helper()
	apptest.Eventually(t, 20*time.Second, func() (bool, string) {
		c, u := checkins(t, n)
		return c == changed && u == unchanged, fmt.Sprintf("%d changed and %d unchanged check-ins recorded, want %d and %d", c, u, changed, unchanged)
	})
}

// checkinMessages returns the messages of the location's panel.checkin
// events, oldest first.
func checkinMessages(t *testing.T, tb *testBundle) []string {
	t.Helper()
	var out []string
	for _, e := range tb.node.Events(t, tb.token, tb.loc.Location.ID) {
		if e.Type == models.EventPanelCheckin {
			out = append(out, e.Message)
		}
	}
	return out
}

func lastSeen(t *testing.T, tb *testBundle) time.Time {
	t.Helper()
	p, err := tb.node.Store.PanelByID(t.Context(), tb.loc.Panel.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.LastSeenAt == nil {
		t.Fatal("the panel was never seen")
	}
	return *p.LastSeenAt
}

func TestCheckin_SameStatusAgain_WritesNoEventButMovesLastSeen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n := tb.node
		conn := linkedPanel(t, tb)
		checkIn(t, conn, disarmed)
		waitCheckins(t, n, 1, 0)
		firstSeen := lastSeen(t, tb)

		for range 3 {
			checkIn(t, conn, disarmed)
		}
		waitCheckins(t, n, 1, 3)
		// The batch writes a panel's time at the start of its second: a
		// check-in in a later second than the first moves last seen on.
		sentLate := false
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			if !sentLate && time.Now().Truncate(time.Second).After(firstSeen) {
				checkIn(t, conn, disarmed)
				sentLate = true
			}
			seen := lastSeen(t, tb)
			return seen.After(firstSeen), fmt.Sprintf("last seen %v, not after the first check-in's %v", seen, firstSeen)
		})
		waitCheckins(t, n, 1, 4)
		if got, want := checkinMessages(t, tb), []string{"Panel checked in: disarmed, no troubles"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("panel.checkin events %q, want only the first check-in's %q", got, want)
		}

		// A new connection knows the stored status: its first check-in
		// of the same status writes nothing either.
		_ = conn.Close()
		n.WaitPanel(t, tb.loc.Location.ID, models.PanelDisconnected)
		again := linkedPanel(t, tb)
		checkIn(t, again, disarmed)
		waitCheckins(t, n, 1, 5)
		if got := checkinMessages(t, tb); len(got) != 1 {
			t.Fatalf("panel.checkin events after a reconnection %q, want the first check-in's only", got)
		}
	})
}

func TestCheckin_ChangedArmStateOrNewTrouble_WritesOneEventEach(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n := tb.node
		conn := linkedPanel(t, tb)
		for _, st := range []panel.Status{disarmed, disarmed, away, away, awayACOff, awayACOff} {
			checkIn(t, conn, st)
		}
		waitCheckins(t, n, 3, 3)
		want := []string{
			"Panel checked in: disarmed, no troubles",
			"Panel checked in: armed away, no troubles",
			"Panel checked in: armed away, 1 trouble: AC power failure",
		}
		if got := checkinMessages(t, tb); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("panel.checkin events %q, want %q", got, want)
		}
		p, err := n.Store.PanelByID(t.Context(), tb.loc.Panel.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.ArmedState != panel.ArmAway || !strings.Contains(p.StatusJSON, `"ac_failure"`) {
			t.Fatalf("the panel's stored status is %s (%s), want the last one reported", p.StatusJSON, p.ArmedState)
		}
	})
}

func TestCheckin_AfterAnArmEvent_TheSameStateIsQuietAnotherIsWritten(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		n := tb.node
		conn := linkedPanel(t, tb)
		checkIn(t, conn, disarmed)
		sendFrame(t, conn, panel.Frame{Type: panel.FrameEvent, Event: &panel.PanelEvent{Kind: panel.EventArmed, ArmedState: panel.ArmAway}})
		checkIn(t, conn, away)
		waitCheckins(t, n, 1, 1)

		// Disarmed at the keypad, but the panel still reports armed away:
		// the status differs from the one stored, and is written.
		sendFrame(t, conn, panel.Frame{Type: panel.FrameEvent, Event: &panel.PanelEvent{Kind: panel.EventDisarmed}})
		checkIn(t, conn, away)
		waitCheckins(t, n, 2, 1)
		want := []string{"Panel checked in: disarmed, no troubles", "Panel checked in: armed away, no troubles"}
		if got := checkinMessages(t, tb); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("panel.checkin events %q, want %q", got, want)
		}
	})
}
