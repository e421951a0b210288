package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/panelsync/panelsync/panel/sim"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut lockedBuffer
	code := run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// lockedBuffer is a buffer a command and the helper processes it starts
// may write at once: os/exec copies a child's output from a goroutine of
// its own.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRun_UnknownCommandAndHelp(t *testing.T) {
	if code, _, errOut := runCmd(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	for _, cmd := range []string{"serve", "migrate", "demo", "version"} {
		code, _, errOut := runCmd(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage") {
			t.Errorf("%s --help: %d %q", cmd, code, errOut)
		}
	}
}

func TestHelp_MatchesTheFlagsAndBenchmarksThatExist(t *testing.T) {
	code, out, _ := runCmd(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help: %d", code)
	}
	for _, name := range []string{"tap", "fanout", "idle", "all-locations", "import"} {
		if _, ok := benchmarks()[name]; !ok {
			t.Fatalf("benchmark %s does not exist", name)
		}
		if !strings.Contains(out, name) {
			t.Errorf("panelsync --help does not name the %s benchmark:\n%s", name, out)
		}
	}

	code, _, errOut := runCmd(t, nil, "watch", "--help")
	if code != 0 || !strings.Contains(errOut, "Usage: panelsync watch [flags]") {
		t.Fatalf("watch --help: %d %q", code, errOut)
	}
	for _, want := range []string{"-after offset", "-email e-mail", "-json", "-location id", "-server URL", "PANELSYNC_PASSWORD", "PANELSYNC_TOKEN"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("watch --help lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "default -1") || strings.Contains(errOut, "Usage of") {
		t.Errorf("watch --help shows an internal default or Go's bare header:\n%s", errOut)
	}
	if code, _, errOut := runCmd(t, nil, "watch", "--after", "-3"); code != 1 || !strings.Contains(errOut, "an offset is a whole number") {
		t.Errorf("watch --after -3: %d %q", code, errOut)
	}
}

func TestRun_BadEnvironment_FailsWithTheVariableNamed(t *testing.T) {
	code, _, errOut := runCmd(t, map[string]string{"PANELSYNC_ACCESS_TOKEN_TTL": "soon"}, "serve")
	if code != 1 || !strings.Contains(errOut, "PANELSYNC_ACCESS_TOKEN_TTL") {
		t.Fatalf("bad duration: %d %q", code, errOut)
	}
	code, _, errOut = runCmd(t, map[string]string{"PANELSYNC_JWT_SECRET": "short"}, "serve")
	if code != 1 || !strings.Contains(errOut, "jwt-secret") {
		t.Fatalf("short secret: %d %q", code, errOut)
	}
}

func TestMigrate_UpDownStatus_OnTheEmbeddedDatabase(t *testing.T) {
	env := map[string]string{"PANELSYNC_DATA_DIR": t.TempDir(), "PANELSYNC_LOG_LEVEL": "error"}
	code, out, errOut := runCmd(t, env, "migrate", "status")
	if code != 0 || !strings.Contains(out, "pending  202611210001_initial") {
		t.Fatalf("status before: %d %q %q", code, out, errOut)
	}
	if code, out, _ = runCmd(t, env, "migrate", "up"); code != 0 || strings.Contains(out, "pending") {
		t.Fatalf("up: %d %q", code, out)
	}
	code, out, _ = runCmd(t, env, "migrate", "down")
	if code != 0 || !strings.Contains(out, "applied  202611210001_initial") || strings.Count(out, "pending") != 1 {
		t.Fatalf("down rolls back exactly the newest migration: %d %q", code, out)
	}
	if code, out, _ = runCmd(t, env, "migrate", "--all", "down"); code != 0 || strings.Contains(out, "applied") {
		t.Fatalf("down --all: %d %q", code, out)
	}
	if code, _, _ = runCmd(t, env, "migrate", "sideways"); code != 2 {
		t.Fatalf("unknown direction: %d", code)
	}
}

func TestVersion_Prints(t *testing.T) {
	code, out, _ := runCmd(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "panelsync ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// The credentials file seed writes points the panels at the node it was
// seeded for: --addr (a wildcard host read as this host) unless --server
// names another URL.
func TestSeed_ServerFollowsAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"port only", []string{"--addr", ":18555"}, "http://127.0.0.1:18555"},
		{"wildcard host", []string{"--addr", "0.0.0.0:18556"}, "http://127.0.0.1:18556"},
		{"server named", []string{"--addr", ":18555", "--server", "https://panels.example.com"}, "https://panels.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "panels.json")
			args := append([]string{"seed", "--locations", "1", "--out", out, "--data-dir", filepath.Join(dir, "data"), "--bcrypt-cost", "4"}, tc.args...)
			if code, _, errOut := runCmd(t, nil, args...); code != 0 {
				t.Fatalf("seed exited %d: %s", code, errOut)
			}
			f, err := sim.LoadCredentialsFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Server != tc.want {
				t.Fatalf("server in the credentials file is %q, want %q", f.Server, tc.want)
			}
		})
	}
}
