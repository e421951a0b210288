package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/panel/sim"
)

// The deployment's shape.
const (
	locations     = 200
	usersPerPanel = 10
)

// node is one panelsync serve process.
type node struct {
	*process
	name string
	id   string
	base string
}

// ready reports whether the node's /readyz answers 200 now.
func (n *node) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (n *node) waitReady(within time.Duration) bool {
	return waitFor(within, func() bool { return !n.exited() && n.ready() })
}

// account is the seeded customer account.
type account struct {
	id, email, password string
}

// cluster is the deployment under test: MariaDB, NATS, nodes a and b, and
// a panel simulator per node linking that node's half of the panels.
type cluster struct {
	db    *mariaDB
	nats  *natsServer
	nodes []*node
	sims  []*process
	acct  account
	// panelsOf lists, by node name, the location ids whose panels link to
	// that node.
	panelsOf map[string][]string
}

// startCluster starts everything and waits until every panel is linked
// and has had its first users sync.
func startCluster(t *testing.T, tl tools, bins binaries, st settings) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{db: startMariaDB(t, tl, dir), nats: startNATS(t, tl, dir), panelsOf: map[string][]string{}}

	const secret = "chaos-test-signing-key-0123456789abcdef01"
	common := []string{
		"PANELSYNC_DATABASE_URL=" + c.db.dsn,
		"PANELSYNC_NATS_URL=" + c.nats.url,
		"PANELSYNC_JWT_SECRET=" + secret,
		"PANELSYNC_CODE_DIGEST_KEY=" + secret,
		"PANELSYNC_SECRET_KEY=" + secret,
		"PANELSYNC_BCRYPT_COST=4",
		"PANELSYNC_LOG_LEVEL=warn",
		"PANELSYNC_LOG_FORMAT=text",
		"PANELSYNC_METRICS_ADDR=off",
		// A node is lost after three silent heartbeats: 3 s here, so that
		// the killed node's panels are released within the scenario, and
		// every database outage of the test lasts longer than that.
		"PANELSYNC_NODE_HEARTBEAT=1s",
		// A killed node's runs are taken over when their lease ends.
		"PANELSYNC_RUN_LEASE=5s",
		"PANELSYNC_COMMAND_TIMEOUT=5s",
		"PANELSYNC_RETRY_BASE=1s",
		"PANELSYNC_SHUTDOWN_TIMEOUT=5s",
	}

	// The seed command migrates the database and writes the panels'
	// credentials; its output names the owner's login.
	credsPath := filepath.Join(dir, "panels.json")
	seed := exec.Command(bins.panelsync, "seed", "--locations", strconv.Itoa(locations),
		"--users-per-panel", strconv.Itoa(usersPerPanel), "--out", credsPath, "--account", "Chaos Co")
	seed.Env = childEnv(append(common, "PANELSYNC_DATA_DIR="+filepath.Join(dir, "seed"))...)
	out, err := seed.CombinedOutput()
	if err != nil {
		t.Fatalf("panelsync seed: %v\n%s", err, regexp.MustCompile(`password: \S+`).ReplaceAll(out, []byte("password: …")))
	}
	c.acct = parseSeed(t, string(out))

	file, err := sim.LoadCredentialsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		port := apptest.FreePort(t)
		n := &node{name: name, id: "node-" + name, base: "http://127.0.0.1:" + strconv.Itoa(port)}
		env := childEnv(append(common,
			"PANELSYNC_ADDR=127.0.0.1:"+strconv.Itoa(port),
			"PANELSYNC_DATA_DIR="+filepath.Join(dir, "node-"+name),
			"PANELSYNC_NODE_ID="+n.id,
			"PANELSYNC_MIGRATE_ON_START=false",
		)...)
		n.process = newProcess(t, dir, n.id, bins.panelsync, []string{"serve"}, env)
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)

		// Half the panels link to each node.
		half := file.Panels[i*locations/2 : (i+1)*locations/2]
		path := filepath.Join(dir, "panels-"+name+".json")
		if err := sim.WriteCredentialsFile(path, sim.CredentialsFile{Server: n.base, UsersPerPanel: usersPerPanel, Panels: half}); err != nil {
			t.Fatal(err)
		}
		for _, p := range half {
			c.panelsOf[name] = append(c.panelsOf[name], p.LocationID)
		}
		c.sims = append(c.sims, newProcess(t, dir, "panelsim-"+name, bins.panelsim,
			[]string{"--credentials", path, "--latency", st.panelLatency.String(), "--status-every", "1h", "--log-level", "error"},
			childEnv()))
	}
	for _, n := range c.nodes {
		if !n.waitReady(30 * time.Second) {
			t.Fatalf("%s was not ready within 30 s", n.id)
		}
	}
	for _, s := range c.sims {
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(st.settle, c.panelsLinked) {
		t.Fatalf("the %d panels did not all link within %s", locations, st.settle)
	}
	if !waitFor(st.settle, func() bool {
		n, err := c.count(`SELECT COUNT(*) FROM locations WHERE account_id = ? AND users_synced_at IS NULL`, c.acct.id)
		return err == nil && n == 0
	}) {
		t.Fatalf("the panels' first users syncs did not all end within %s", st.settle)
	}
	return c
}

var seedLine = regexp.MustCompile(`seeded account "[^"]*" \((\S+)\)[\s\S]*owner:\s+(\S+)\s+password:\s+(\S+)`)

func parseSeed(t *testing.T, out string) account {
	t.Helper()
	m := seedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("panelsync seed printed no account, owner and password")
	}
	return account{id: m[1], email: m[2], password: m[3]}
}

// count runs a COUNT query on the test's own database connection.
func (c *cluster) count(query string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	err := c.db.db.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// panelsLinked reports whether every panel is recorded connected to the
// node its simulator dials.
func (c *cluster) panelsLinked() bool {
	for _, n := range c.nodes {
		got, err := c.count(`SELECT COUNT(*) FROM panels WHERE account_id = ? AND connection = 'connected' AND node_id = ?`, c.acct.id, n.id)
		if err != nil || got != len(c.panelsOf[n.name]) {
			return false
		}
	}
	return true
}

// activeRuns counts the account's runs that have not ended.
func (c *cluster) activeRuns() (int, error) {
	return c.count(`SELECT COUNT(*) FROM runs WHERE account_id = ? AND state IN ('queued', 'running')`, c.acct.id)
}

// maxOffset is the account's newest Event Log offset.
func (c *cluster) maxOffset() (int64, error) {
	n, err := c.count(`SELECT COALESCE(MAX(log_offset), 0) FROM events WHERE account_id = ?`, c.acct.id)
	return int64(n), err
}

func (c *cluster) String() string {
	return fmt.Sprintf("nodes %s and %s on MariaDB %s and NATS %s", c.nodes[0].base, c.nodes[1].base, c.db.addr, c.nats.addr)
}
