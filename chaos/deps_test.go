package chaos

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/panelsync/panelsync/app/apptest"
)

// mariaDB is a MariaDB server of the test's own, on a data folder and a
// port nobody else uses; it is never the machine's shared server.
type mariaDB struct {
	*process
	addr string
	// dsn reaches the panelsync database as panelsync's nodes do: with no
	// timeouts of the test's choosing, so that what bounds a call is the
	// product's own doing.
	dsn string
	// db is the test's own connection to the panelsync database, for its
	// checks; it is only used while the server is up.
	db *sql.DB
}

// startMariaDB installs a fresh data folder, starts the server on it and
// creates the panelsync database.
func startMariaDB(t *testing.T, tl tools, dir string) *mariaDB {
	t.Helper()
	dataDir := filepath.Join(dir, "mariadb")
	installArgs := []string{"--no-defaults", "--datadir=" + dataDir, "--auth-root-authentication-method=normal", "--skip-test-db"}
	serverArgs := []string{"--no-defaults", "--datadir=" + dataDir}
	if os.Geteuid() == 0 {
		// As root both refuse to run unless told which user to run as.
		installArgs = append(installArgs, "--user=root")
		serverArgs = append(serverArgs, "--user=root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, tl.installDB, installArgs...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := apptest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	serverArgs = append(serverArgs,
		"--socket="+filepath.Join(dir, "mariadb.sock"),
		"--pid-file="+filepath.Join(dir, "mariadb.pid"),
		"--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--innodb-buffer-pool-size=64M",
		// Each commit still reaches the operating system, so SIGKILL
		// loses nothing; only a machine crash could.
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=300",
	)
	m := &mariaDB{
		process: newProcess(t, dir, "mariadb", tl.mariadbd, serverArgs, childEnv()),
		addr:    addr,
		dsn:     "root@tcp(" + addr + ")/panelsync",
	}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	if !m.waitUp(time.Minute) {
		t.Fatal("MariaDB did not accept connections within a minute")
	}
	admin, err := sql.Open("mysql", "root@tcp("+addr+")/?timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE panelsync CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	// The test's connection has timeouts, unlike the nodes': its checks
	// run while the server is up, and must never hang the test.
	m.db, err = sql.Open("mysql", "root@tcp("+addr+")/panelsync?parseTime=true&loc=UTC&timeout=5s&readTimeout=30s&writeTimeout=30s")
	if err != nil {
		t.Fatal(err)
	}
	m.db.SetMaxOpenConns(4)
	t.Cleanup(func() { _ = m.db.Close() })
	return m
}

// ping reports whether the server answers a query now.
func (m *mariaDB) ping() bool {
	db, err := sql.Open("mysql", "root@tcp("+m.addr+")/?timeout=1s&readTimeout=1s")
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx) == nil
}

// waitUp waits until the server answers queries, or the bound passes.
func (m *mariaDB) waitUp(within time.Duration) bool {
	return waitFor(within, func() bool {
		if m.exited() {
			return false
		}
		return m.ping()
	})
}

// natsServer is a NATS server with JetStream of the test's own; never the
// machine's shared one.
type natsServer struct {
	*process
	addr string
	url  string
}

func startNATS(t *testing.T, tl tools, dir string) *natsServer {
	t.Helper()
	port := apptest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "jetstream")}
	n := &natsServer{process: newProcess(t, dir, "nats", tl.natsServer, args, childEnv()), addr: addr, url: "nats://" + addr}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	if !n.waitUp(30 * time.Second) {
		t.Fatal("nats-server did not accept connections within 30 s")
	}
	return n
}

func (n *natsServer) waitUp(within time.Duration) bool {
	return waitFor(within, func() bool { return !n.exited() && accepts(n.addr) })
}
