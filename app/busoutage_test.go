package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
	"github.com/panelsync/panelsync/syncer"
)

// natsProcess is a nats-server the test runs itself, so that it can be
// killed and started again without touching anything shared.
type natsProcess struct {
	t    *testing.T
	bin  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	bin, port := apptest.NATSServerPath(t), apptest.FreePort(t)
	n := &natsProcess{t: t, bin: bin, port: port}
	n.start()
	t.Cleanup(n.kill)
	return n
}

func (n *natsProcess) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs the server and waits until it accepts connections.
func (n *natsProcess) start() {
	n.t.Helper()
	log, err := os.OpenFile(filepath.Join(n.t.TempDir(), "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(n.bin, "-a", "127.0.0.1", "-p", fmt.Sprint(n.port))
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start nats-server: %v", err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}(n.cmd, n.done)
	apptest.Eventually(n.t, 10*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), time.Second)
		if err != nil {
			return false, err.Error()
		}
		_ = c.Close()
		return true, ""
	})
}

// kill stops the server at once, as a crash would.
func (n *natsProcess) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// timedResponse is a request's answer and how long it took.
type timedResponse struct {
	status     int
	code       string
	retryAfter string
	took       time.Duration
}

// doTimed sends a request with a bound of its own, so that a request that
// hangs fails the test instead of stalling it.
func doTimed(t *testing.T, node *apptest.Node, method, path, token string, body any) timedResponse {
	t.Helper()
	req := node.Request(t, method, path, token, body)
	if path == "/v1/realtime" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var p struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return timedResponse{status: resp.StatusCode, code: p.Code, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(began)}
}

// eventWatcher follows an account's Event Log over a realtime socket and
// keeps every offset it is sent.
type eventWatcher struct {
	mu      sync.Mutex
	offsets []int64
	types   []string
}

func watchEvents(t *testing.T, node *apptest.Node, token string, after int64) *eventWatcher {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(node.BaseURL, "http")+"/v1/realtime", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"op":"subscribe","after":%d}`, after)); err != nil {
		t.Fatal(err)
	}
	w := &eventWatcher{}
	subscribed := make(chan struct{})
	go func() {
		once := sync.Once{}
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				Type  string `json:"type"`
				Event *struct {
					Offset int64  `json:"offset"`
					Type   string `json:"type"`
				} `json:"event"`
			}
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			if f.Type == "subscribed" {
				once.Do(func() { close(subscribed) })
			}
			if f.Event != nil {
				w.mu.Lock()
				w.offsets = append(w.offsets, f.Event.Offset)
				w.types = append(w.types, f.Event.Type)
				w.mu.Unlock()
			}
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the realtime subscription was not confirmed")
	}
	return w
}

func (w *eventWatcher) received() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.offsets)
}

// accountOffsets lists the account's Event Log offsets after after, oldest
// first, from the database.
func accountOffsets(t *testing.T, store *models.Store, accountID string, after int64) []int64 {
	t.Helper()
	var out []int64
	for {
		rows, err := store.ListEvents(context.Background(), models.EventQuery{AccountID: accountID, After: &after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, r.Offset)
			after = r.Offset
		}
		if len(rows) < 500 {
			return out
		}
	}
}

// TestBusOutage_ExternalNATSStopsAndReturns kills the external NATS two
// nodes share and starts it again. While it is down the routes that need
// it answer 503 with Retry-After within a bound, reads go on, readiness
// says the bus is failing, a command to a panel on the other node is a
// transient bus failure rather than the panel being offline, and nothing
// reports the panel disconnected or fails its sync. Once it is back, taps
// succeed within a few seconds and a client on the node that did not write
// them receives every event committed during the outage, once, in order.
func TestBusOutage_ExternalNATSStopsAndReturns(t *testing.T) {
	backends := dbtest.Backends(t)
	// The last backend is MySQL when it is configured: two nodes of a
	// deployment share a server database.
	b := backends[len(backends)-1]
	nats := startNATSProcess(t)

	cfg := apptest.Config(t, b)
	cfg.NATSURL = nats.url()
	// One attempt only: a run stopped by the outage must wait for the bus
	// without using it up, however often it is retried meanwhile.
	cfg.MaxAttempts = 1
	cfg.RetryBase = 200 * time.Millisecond
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	// Node A alone serves rank 1, the location's: its runs reach the panel
	// on node B over the bus.
	cfgA.Ranks = "1"
	nodeA := apptest.Start(t, cfgA)
	nodeB := apptest.Start(t, cfgB)

	acct, token := nodeA.Account(t, "Bus Outage")
	loc, cred := nodeA.Location(t, acct.ID, "Harbour")
	nodeB.Panel(t, cred, sim.Options{Users: 3})
	ctx := context.Background()
	panelRow, err := nodeA.Store.PanelBySerial(ctx, cred.Serial)
	if err != nil || panelRow.NodeID != "node-b" {
		t.Fatalf("the panel should be linked to node-b: %+v %v", panelRow, err)
	}
	if r := nodeA.Do(t, "PATCH", "/v1/locations/"+loc.Location.ID, token, map[string]any{"rank": 1}); r.Status != http.StatusOK {
		t.Fatalf("set rank: %d %s", r.Status, r.Body)
	}
	syncPath := "/v1/locations/" + loc.Location.ID + "/sync"
	run := nodeA.Sync(t, token, loc.Location.ID, "users").Run
	if got := nodeA.WaitRun(t, token, run.ID); got.State != "succeeded" {
		t.Fatalf("a tap before the outage: %+v", got)
	}

	// A client follows the account on node B from where the log stands.
	start := slices.Max(append([]int64{0}, accountOffsets(t, nodeA.Store, acct.ID, 0)...))
	watcher := watchEvents(t, nodeB, token, start)

	nats.kill()
	killed := time.Now()

	// Readiness says the bus is failing, promptly.
	apptest.Eventually(t, 2*time.Second, func() (bool, string) {
		r := nodeA.Do(t, "GET", "/readyz", "", nil)
		var h struct {
			Checks map[string]string `json:"checks"`
		}
		_ = json.Unmarshal(r.Body, &h)
		return r.Status == http.StatusServiceUnavailable && h.Checks["bus"] == "failing", fmt.Sprintf("%d %s", r.Status, r.Body)
	})
	readyFailedAfter := time.Since(killed)

	// Routes that need the bus answer 503 with Retry-After, on both nodes,
	// within the reconnect grace and some slack for a busy machine.
	const bound = 3 * time.Second
	var first503 time.Duration
	for _, node := range []*apptest.Node{nodeA, nodeB} {
		for _, route := range []struct {
			method, path string
			body         any
		}{
			{"POST", syncPath, map[string]string{"kind": "users"}},
			{"POST", "/v1/realtime/tickets", nil},
			{"GET", "/v1/realtime", nil},
			{"POST", "/v1/auth/logout", nil},
		} {
			r := doTimed(t, node, route.method, route.path, token, route.body)
			if first503 == 0 {
				first503 = time.Since(killed)
			}
			if r.status != http.StatusServiceUnavailable || r.code != models.CodeServiceUnavailable || r.retryAfter != "5" {
				t.Errorf("%s %s with the bus down: %d %q Retry-After %q", route.method, route.path, r.status, r.code, r.retryAfter)
			}
			if r.took > bound {
				t.Errorf("%s %s took %v with the bus down", route.method, route.path, r.took)
			}
		}
		// What the database serves goes on answering.
		if r := doTimed(t, node, "GET", "/v1/locations/"+loc.Location.ID, token, nil); r.status != http.StatusOK {
			t.Errorf("a read with the bus down: %d %q", r.status, r.code)
		}
	}

	// A command to the panel from the node that does not hold it is a bus
	// failure, and a transient one; the node that holds it still reaches
	// it.
	sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	began := time.Now()
	_, err = nodeA.App.Link().Send(sendCtx, panelRow.ID, panel.CmdStatusGet, nil)
	cancel()
	f, ok := panel.AsCommandFailure(err)
	if !ok || f.Code != panel.FailBusUnavailable || !f.Transient() {
		t.Errorf("a command over the bus while it is down: %v", err)
	}
	if took := time.Since(began); took > bound {
		t.Errorf("a command over the bus while it is down took %v", took)
	}
	sendCtx, cancel = context.WithTimeout(ctx, 5*time.Second)
	if _, err := nodeB.App.Link().Send(sendCtx, panelRow.ID, panel.CmdStatusGet, nil); err != nil {
		t.Errorf("a command to a panel held here while the bus is down: %v", err)
	}
	cancel()

	// A panel that links during the outage is taken, not kept waiting on
	// the bus.
	loc2, cred2 := nodeA.Location(t, acct.ID, "Quay")
	nodeA.MarkUsersSynced(t, loc2.Location.ID)
	began = time.Now()
	nodeB.Panel(t, cred2, sim.Options{Users: 1})
	if took := time.Since(began); took > bound {
		t.Errorf("a panel linking while the bus is down took %v", took)
	}

	// Work committed on node A during the outage: runs whichever node
	// takes them, and their events.
	actor := models.SystemActor(acct.ID, "bus outage test")
	var outageRuns []string
	for _, kind := range []models.RunKind{models.RunUsers, models.RunRefresh} {
		r, _, err := nodeA.App.Engine().RequestSync(ctx, actor, syncer.SyncRequest{LocationID: loc.Location.ID, Kind: kind, Trigger: models.TriggerAPI})
		if err != nil {
			t.Fatalf("request a %s run during the outage: %v", kind, err)
		}
		outageRuns = append(outageRuns, r.ID)
	}

	nats.start()
	restarted := time.Now()
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		r := doTimed(t, nodeA, "POST", syncPath, token, map[string]string{"kind": "panel"})
		return r.status == http.StatusAccepted || r.status == http.StatusOK, fmt.Sprintf("%d %s", r.status, r.code)
	})
	tapRecovered := time.Since(restarted)
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		r := nodeB.Do(t, "POST", "/v1/realtime/tickets", token, nil)
		return r.Status == http.StatusCreated, fmt.Sprint(r.Status)
	})
	for _, id := range outageRuns {
		if got := nodeA.WaitRun(t, token, id); got.State != "succeeded" {
			t.Errorf("a run requested during the outage ended %s: %+v", got.State, got.Error)
		}
		if r, err := nodeA.Store.RunForWorker(ctx, id); err != nil || r.Attempt != 1 {
			t.Errorf("a run retried through the outage is on attempt %d (%v), want 1: the outage is not its failure", r.Attempt, err)
		}
	}

	// The client on node B gets every event committed since it
	// subscribed, the outage's included, once and in order.
	var want []int64
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		want = accountOffsets(t, nodeA.Store, acct.ID, start)
		got := watcher.received()
		return len(got) >= len(want), fmt.Sprintf("received %d of %d events", len(got), len(want))
	})
	deliveredAfter := time.Since(restarted)
	if got := watcher.received(); !slices.Equal(got[:len(want)], want) || len(got) > len(want) && got[len(want)] <= want[len(want)-1] {
		t.Errorf("the client received offsets %v, want %v", got, want)
	}

	retrying := map[string]int{}
	for _, e := range nodeA.Events(t, token, loc.Location.ID) {
		if e.Offset <= start {
			continue
		}
		if e.Type == models.EventPanelDisconnected || e.Type == models.EventSyncFailed {
			t.Errorf("the outage produced %s: %s", e.Type, e.Message)
		}
		if e.Type == models.EventSyncRetrying && e.RunID != nil {
			retrying[*e.RunID]++
		}
	}
	for run, n := range retrying {
		if n > 1 {
			t.Errorf("run %s told the outage %d times; once is enough", run, n)
		}
	}
	t.Logf("bus killed: readyz failing after %v, first 503 after %v; NATS back: taps accepted after %v, outage events delivered after %v (%d events checked)",
		readyFailedAfter.Round(time.Millisecond), first503.Round(time.Millisecond), tapRecovered.Round(time.Millisecond),
		deliveredAfter.Round(time.Millisecond), len(want))
}
