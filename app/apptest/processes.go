package apptest

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// FreePort returns a loopback TCP port nobody listens on now, for a
// process a test starts on a port of its own.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NATSServerPath finds the nats-server binary for a test that runs a bus
// of its own. Without one the test fails in CI, which installs it, and is
// skipped elsewhere.
func NATSServerPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nats-server is not installed; CI installs it (apt-get install nats-server)")
	}
	t.Skip("nats-server is not installed")
	return ""
}
