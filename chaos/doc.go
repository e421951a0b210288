// Package chaos holds the fault-injection test of a two-node panelsync
// deployment: two real serve processes on a MariaDB server and a NATS
// server the test starts for itself, simulated panels in a process of
// their own, an All Locations batch in flight and a client following the
// Event Log, while a node is killed, the bus stops, the database is
// killed and then frozen. It checks what operators and users rely on when
// things break: nothing is lost or repeated, a dependency that is down
// answers 503 rather than 500 or silence, nodes do not blame each other,
// and service returns within seconds of the dependency.
//
// The package has no code of its own; it exists so that the test runs
// beside the other packages' tests in CI. It needs mariadbd,
// mariadb-install-db and nats-server: without them it fails in CI (CI
// set) and skips elsewhere, and it skips under -short. The scenario
// durations can be tuned with PANELSYNC_CHAOS_* variables, listed in
// settings_test.go.
package chaos
