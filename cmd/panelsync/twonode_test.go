package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

// asServerEnv makes the test binary run as panelsync itself, so the
// two-node test starts real server processes without a separate build.
const asServerEnv = "PANELSYNC_TEST_AS_SERVER"

func TestMain(m *testing.M) {
	if args := os.Getenv(asServerEnv); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, strings.Fields(args), os.Stdout, os.Stderr, os.Getenv)
		stop()
		os.Exit(code)
	}
	// Bench commands start their helper processes as os.Executable() with
	// the arguments "bench <helper> …", and in tests that is this binary.
	if len(os.Args) > 2 && os.Args[1] == "bench" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startProcess runs cmd until the test ends, then stops it with SIGTERM.
func startProcess(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200", url)
}

// cluster is two serve processes, node A and node B, sharing one MySQL
// database and one external NATS server, with a store on that database.
type cluster struct {
	nodes     map[string]string
	processes map[string]*exec.Cmd
	store     *models.Store
}

// startCluster runs a cluster until the test ends; it skips the test
// where MySQL or nats-server is missing outside CI.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	return startClusterWith(t, nil)
}

// startClusterWith is startCluster with variables of its own for each
// node, by node name.
func startClusterWith(t *testing.T, nodeEnv map[string][]string) *cluster {
	t.Helper()
	var mysql *dbtest.Backend
	for _, b := range dbtest.Backends(t) {
		if b.Name == "mysql" {
			mysql = &b
		}
	}
	if mysql == nil {
		if os.Getenv("CI") != "" {
			t.Fatal("needs MySQL, which CI provides: set " + dbtest.MySQLEnv)
		}
		t.Skip("needs MySQL: set " + dbtest.MySQLEnv)
	}
	natsBin := apptest.NATSServerPath(t)
	ctx := context.Background()

	natsPort := apptest.FreePort(t)
	startProcess(t, exec.Command(natsBin, "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort)), "nats")

	secret := "two-node-signing-key-0123456789abcdef0123"
	baseEnv := []string{
		"PANELSYNC_DATABASE_URL=" + mysql.Config.MySQLDSN,
		"PANELSYNC_NATS_URL=nats://127.0.0.1:" + fmt.Sprint(natsPort),
		"PANELSYNC_JWT_SECRET=" + secret,
		"PANELSYNC_CODE_DIGEST_KEY=" + secret,
		"PANELSYNC_MIGRATE_ON_START=false",
		"PANELSYNC_LOG_LEVEL=warn",
		"PANELSYNC_BCRYPT_COST=4",
		"PANELSYNC_NODE_HEARTBEAT=200ms",
		"PANELSYNC_METRICS_ADDR=off",
	}
	env := func(extra ...string) func(string) string {
		m := map[string]string{}
		for _, kv := range append(baseEnv, extra...) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return func(k string) string { return m[k] }
	}
	if code := run(ctx, []string{"migrate", "up"}, io.Discard, io.Discard, env("PANELSYNC_DATA_DIR="+t.TempDir())); code != 0 {
		t.Fatalf("migrate up exited %d", code)
	}

	nodes := map[string]string{}
	processes := map[string]*exec.Cmd{}
	for _, name := range []string{"a", "b"} {
		port := apptest.FreePort(t)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), baseEnv...)
		cmd.Env = append(cmd.Env,
			asServerEnv+"=serve",
			"PANELSYNC_ADDR=127.0.0.1:"+fmt.Sprint(port),
			"PANELSYNC_DATA_DIR="+t.TempDir(),
			"PANELSYNC_NODE_ID=node-"+name,
		)
		cmd.Env = append(cmd.Env, nodeEnv[name]...)
		startProcess(t, cmd, "node-"+name)
		processes[name] = cmd
		nodes[name] = "http://127.0.0.1:" + fmt.Sprint(port)
	}
	for _, base := range nodes {
		waitHTTP(t, base+"/readyz")
	}
	db, err := models.Open(ctx, mysql.Config)
	if err != nil {
		t.Fatal(err)
	}
	store := models.NewStore(db)
	t.Cleanup(func() { _ = store.Close() })
	return &cluster{nodes: nodes, processes: processes, store: store}
}

// TestTwoNodes_PanelOnOneClientOnOther_ClientSeesTheSync runs two serve
// processes sharing one MySQL database and one external NATS server: a
// panel linked to node A, a realtime client on node B, and syncs requested
// on either node.
func TestTwoNodes_PanelOnOneClientOnOther_ClientSeesTheSync(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	nodes, processes, store := c.nodes, c.processes, c.store

	// Seed an account, a login and a location straight into the shared
	// database.
	acct, err := store.CreateAccount(ctx, "Two Node Co")
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword("two-node-password", 4)
	if _, err := store.CreateLogin(ctx, models.Login{AccountID: acct.ID, Email: "owner@two.test", Name: "Owner", Role: models.RoleOwner, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	devSecret, digest := auth.NewDeviceSecret()
	name := "Split Site"
	loc, err := store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
		Settings: models.LocationSettings{Name: &name}, PanelSerial: "TWO-0001", SecretHash: digest,
	})
	if err != nil {
		t.Fatal(err)
	}

	// The panel links to node A.
	p := sim.NewPanel(sim.Credentials{Serial: "TWO-0001", Secret: devSecret, LocationID: loc.Location.ID, Name: name}, sim.Options{Users: 8})
	pctx, stopPanel := context.WithCancel(ctx)
	panelDone := make(chan struct{})
	go func() { defer close(panelDone); _ = p.Run(pctx, nodes["a"]) }()
	t.Cleanup(func() { stopPanel(); <-panelDone })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}

	// The panel's first link starts a full users sync of its own; the syncs
	// below are requested once it has succeeded, so that they start runs
	// of their own instead of joining it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := store.LocationByID(ctx, loc.Location.ID)
		if err == nil && v.Location.UsersSyncedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the panel's first link did not sync its users: %+v %v", v.Location, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	linked, err := store.PanelBySerial(ctx, "TWO-0001")
	if err != nil || linked.NodeID != "node-a" || linked.Connection != models.PanelConnected {
		t.Fatalf("panel should be linked to node-a: %+v %v", linked, err)
	}

	// The client watches on node B.
	token := loginOn(t, nodes["b"], "owner@two.test", "two-node-password")
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(nodes["b"], "http")+"/v1/realtime", h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe"}`))
	expectFrame(t, conn, func(f map[string]any) bool { return f["type"] == "subscribed" })

	for _, on := range []string{"b", "a"} {
		runID := requestSync(t, nodes[on], token, loc.Location.ID)
		for _, want := range []string{"sync.requested", "sync.succeeded"} {
			expectFrame(t, conn, func(f map[string]any) bool {
				ev, _ := f["event"].(map[string]any)
				return ev != nil && ev["type"] == want && ev["run_id"] == runID
			})
		}
	}

	// Node A dies without a word: node B notices its silent heartbeat and
	// marks the panel it held disconnected, and the client hears of it.
	if err := processes["a"].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, conn, func(f map[string]any) bool {
		ev, _ := f["event"].(map[string]any)
		return ev != nil && ev["type"] == "panel.disconnected" && ev["location_id"] == loc.Location.ID
	})
	lost, err := store.PanelBySerial(ctx, "TWO-0001")
	if err != nil || lost.Connection != models.PanelDisconnected {
		t.Fatalf("the dead node's panel should be disconnected: %+v %v", lost, err)
	}
}

// TestTwoNodes_StaffGrantExpires_EachNodeClosesItsWatchers: a support
// login watches an account through a grant on both nodes; when the grant
// expires, each node closes its own connection with 4003, with no message
// between them.
func TestTwoNodes_StaffGrantExpires_EachNodeClosesItsWatchers(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	const password = "two-node-password"
	hash, _ := auth.HashPassword(password, 4)
	customer, err := c.store.CreateAccount(ctx, "Customer Co")
	if err != nil {
		t.Fatal(err)
	}
	staff, err := c.store.CreateAccount(ctx, "Platform Staff")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []models.Login{
		{AccountID: customer.ID, Email: "owner@customer.test", Name: "Owner", Role: models.RoleOwner, PasswordHash: hash},
		{AccountID: staff.ID, Email: "support@staff.test", Name: "Support", Role: models.RoleSupport, PasswordHash: hash},
	} {
		if _, err := c.store.CreateLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
	}

	// Whole seconds, stored exactly: three to four seconds ahead, time
	// enough to subscribe on both nodes on a busy machine.
	expiresAt := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC()
	owner := loginOn(t, c.nodes["a"], "owner@customer.test", password)
	body := fmt.Sprintf(`{"email":"support@staff.test","expires_at":%q}`, expiresAt.Format(time.RFC3339))
	req, _ := http.NewRequest("POST", c.nodes["a"]+"/v1/staff-grants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+owner)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("grant: %d", resp.StatusCode)
	}

	support := loginOn(t, c.nodes["b"], "support@staff.test", password)
	watchers := map[string]*websocket.Conn{}
	for _, on := range []string{"a", "b"} {
		h := http.Header{}
		h.Set("Authorization", "Bearer "+support)
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.nodes[on], "http")+"/v1/realtime", h)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"op":"subscribe","account_id":%q}`, customer.ID)))
		expectFrame(t, conn, func(f map[string]any) bool { return f["type"] == "subscribed" })
		watchers[on] = conn
	}
	for on, conn := range watchers {
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, data, err := conn.ReadMessage()
		if err == nil {
			t.Fatalf("node %s sent %s to a watcher of an account with no events", on, data)
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4003 {
			t.Fatalf("node %s: watcher ended with %v, want close 4003", on, err)
		}
		if time.Now().Before(expiresAt) {
			t.Fatalf("node %s closed the watcher before the grant expired at %v", on, expiresAt)
		}
	}
}

func loginOn(t *testing.T, base, email, password string) string {
	t.Helper()
	resp, err := http.Post(base+"/v1/auth/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("login on %s: %d %v", base, resp.StatusCode, err)
	}
	return out.AccessToken
}

func requestSync(t *testing.T, base, token, locationID string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/locations/"+locationID+"/sync", strings.NewReader(`{"kind":"users"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Run struct {
			ID string `json:"id"`
		} `json:"run"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &out) != nil {
		t.Fatalf("sync on %s: %d %s", base, resp.StatusCode, body)
	}
	return out.Run.ID
}

// expectFrame reads frames until one matches, failing after 10 seconds.
func expectFrame(t *testing.T, conn *websocket.Conn, match func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = conn.SetReadDeadline(deadline)
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for a frame: %v", err)
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if match(f) {
			return
		}
	}
}

func TestTwoNodes_DeactivateOnOneNode_ClosesTheLoginsSocketsOnTheOther(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	const password = "two-node-password"
	hash, _ := auth.HashPassword(password, 4)
	acct, err := c.store.CreateAccount(ctx, "Deactivation Co")
	if err != nil {
		t.Fatal(err)
	}
	var member models.Login
	for _, l := range []models.Login{
		{AccountID: acct.ID, Email: "owner@deactivation.test", Name: "Owner", Role: models.RoleOwner, PasswordHash: hash},
		{AccountID: acct.ID, Email: "member@deactivation.test", Name: "Member", Role: models.RoleMember, PasswordHash: hash},
	} {
		created, err := c.store.CreateLogin(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		member = created
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+loginOn(t, c.nodes["b"], "member@deactivation.test", password))
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.nodes["b"], "http")+"/v1/realtime", h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe"}`))
	expectFrame(t, conn, func(f map[string]any) bool { return f["type"] == "subscribed" })

	owner := loginOn(t, c.nodes["a"], "owner@deactivation.test", password)
	req, _ := http.NewRequest("POST", c.nodes["a"]+"/v1/logins/"+member.ID+"/deactivate", nil)
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deactivate on node A: %d", resp.StatusCode)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("the member's socket on node B ended with %v, want close 4001", err)
		}
		return
	}
}
