package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a child process the test starts, kills and starts again with
// the same command line. Every life of it writes to one log file, shown
// when the test fails.
type process struct {
	name string
	path string
	args []string
	env  []string
	log  *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// newProcess prepares a process; it stops when the test ends, if still
// running.
func newProcess(t *testing.T, dir, name, path string, args, env []string) *process {
	t.Helper()
	if keep := os.Getenv("PANELSYNC_CHAOS_LOG_DIR"); keep != "" {
		dir = keep
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: name, path: path, args: args, env: env, log: logFile}
	t.Cleanup(func() {
		p.stop(15 * time.Second)
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("%s log: %s", name, excerpt(logFile.Name()))
		}
	})
	return p
}

// start runs the process once more.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	fmt.Fprintf(p.log, "==== chaos test: starting %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig to the running process.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// kill ends the process with SIGKILL and waits for it.
func (p *process) kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
	return nil
}

// stop asks the process to end with SIGTERM, kills it after grace, and
// waits for it; it does nothing when the process is not running.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	// A frozen process would hold SIGTERM pending until continued.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// exited reports whether the running process has ended by itself.
func (p *process) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// excerpt is what a failure shows of a log: its first error lines and
// its last lines.
func excerpt(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var errs []string
	for _, l := range lines {
		if len(errs) < 15 && (strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic")) {
			errs = append(errs, l)
		}
	}
	out := "\nfirst errors:\n  " + strings.Join(errs, "\n  ")
	return out + "\nlast lines:\n  " + strings.Join(lines[max(0, len(lines)-12):], "\n  ")
}

// tools are the outside programs the test runs.
type tools struct {
	mariadbd, installDB, natsServer string
}

// findTools looks the outside programs up. Without them the test fails
// in CI, which installs them, and skips elsewhere.
func findTools(t *testing.T) tools {
	t.Helper()
	var missing []string
	find := func(name string) string {
		for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name, "/usr/local/bin/" + name} {
			if path, err := exec.LookPath(p); err == nil {
				return path
			}
		}
		missing = append(missing, name)
		return ""
	}
	tl := tools{mariadbd: find("mariadbd"), installDB: find("mariadb-install-db"), natsServer: find("nats-server")}
	if len(missing) > 0 {
		msg := "the chaos test needs " + strings.Join(missing, ", ") + " (apt-get install mariadb-server nats-server)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tl
}

// binaries are panelsync and panelsim, built once for the test.
type binaries struct {
	panelsync, panelsim string
}

// buildBinaries compiles cmd/panelsync and cmd/panelsim into dir with the
// Go toolchain running the test.
func buildBinaries(t *testing.T, dir string) binaries {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/panelsync/panelsync/cmd/panelsync", "github.com/panelsync/panelsync/cmd/panelsim")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out.String())
	}
	t.Logf("built panelsync and panelsim in %s", time.Since(start).Round(100*time.Millisecond))
	return binaries{panelsync: filepath.Join(dir, "panelsync"), panelsim: filepath.Join(dir, "panelsim")}
}

// accepts reports whether something accepts TCP connections at addr.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// waitFor polls cond every 50 ms until it holds or within passes, and
// says which.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childEnv is the environment of a child process: the test's own without
// any panelsync or panelsim setting, so that a developer's shell cannot
// change what the test runs, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PANELSYNC_") || strings.HasPrefix(kv, "PANELSIM_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
