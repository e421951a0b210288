package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

func noEnv(string) string { return "" }

func writeCredentials(t *testing.T, server string, n int) (string, []sim.Credentials) {
	t.Helper()
	var creds []sim.Credentials
	for i := range n {
		creds = append(creds, sim.Credentials{Serial: fmt.Sprintf("SN-%d", i), Secret: fmt.Sprintf("secret-%d", i)})
	}
	path := filepath.Join(t.TempDir(), "panels.json")
	if err := sim.WriteCredentialsFile(path, sim.CredentialsFile{Server: server, Panels: creds}); err != nil {
		t.Fatal(err)
	}
	return path, creds
}

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errOut, noEnv); code != exitOK {
		t.Fatalf("--help exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Usage: panelsim", "-credentials", "-error-rate", "-keypad-change-every", "-put-failure-rate", "-protected-users", "(default 1)", "PANELSIM_ERROR_RATE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	path, _ := writeCredentials(t, "http://127.0.0.1:1", 2)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "--credentials is required"},
		{[]string{"--credentials", path, "--error-rate", "2"}, "error rate must be between 0 and 1"},
		{[]string{"--credentials", path, "--timeout-rate", "-0.5"}, "timeout rate must be between 0 and 1"},
		{[]string{"--credentials", path, "--armed", "armed"}, "armed state must be one of"},
		{[]string{"--credentials", path, "--put-failure-rate", "1.5"}, "put failure rate must be between 0 and 1"},
		{[]string{"--credentials", path, "--put-failure-rate", "often"}, "invalid value"},
		{[]string{"--credentials", path, "--protected-users", "0"}, "protected users must be between 1 and 9999"},
		{[]string{"--credentials", path, "--protected-users", "1,master"}, `"master" is not a user number`},
		{[]string{"--credentials", path, "--protected-users", "2,2"}, "protected user 2 is listed twice"},
		{[]string{"--credentials", path, "--count", "-1"}, "--count must not be negative"},
		{[]string{"--credentials", path, "--count", "3"}, "lists only 2 panels"},
		{[]string{"--credentials", path, "--users", "-1"}, "--users must be at least 1"},
		{[]string{"--credentials", path, "--server", "localhost:8080"}, "--server"},
		{[]string{"--credentials", path, "--latency", "soon"}, "invalid value"},
		{[]string{"--credentials", path, "--log-level", "loud"}, "--log-level"},
		{[]string{"--credentials", path, "extra"}, "unexpected argument"},
		{[]string{"--credentials", filepath.Join(t.TempDir(), "none.json")}, "read credentials file"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, &out, &errOut, noEnv)
		if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), exitUsage, c.want)
		}
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	path, _ := writeCredentials(t, "http://127.0.0.1:1", 1)
	env := func(name string) string {
		if name == "PANELSIM_ERROR_RATE" {
			return "1.5"
		}
		return ""
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--credentials", path}, &out, &errOut, env); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), "error rate must be between 0 and 1") {
		t.Fatalf("stderr %q does not reject the environment's error rate", errOut.String())
	}
	// The command line wins over the environment.
	s, err := parseSettings([]string{"--credentials", path, "--error-rate", "0.25"}, env, &out)
	if err != nil || s.opts.ErrorRate != 0.25 {
		t.Fatalf("error rate %v, err %v; want the flag's 0.25", s.opts.ErrorRate, err)
	}
}

func TestProtectedUsersFlag(t *testing.T) {
	path, _ := writeCredentials(t, "http://127.0.0.1:1", 1)
	cases := []struct {
		args []string
		env  string
		want []int
	}{
		{nil, "", []int{sim.DefaultProtectedUser}},
		{[]string{"--protected-users", "1, 2,40"}, "", []int{1, 2, 40}},
		{[]string{"--protected-users", "none"}, "", []int{}},
		{[]string{"--protected-users="}, "", []int{}},
		{nil, "7,8", []int{7, 8}},
		{[]string{"--protected-users", "3"}, "7,8", []int{3}},
	}
	for _, c := range cases {
		env := func(name string) string {
			if name == "PANELSIM_PROTECTED_USERS" {
				return c.env
			}
			return ""
		}
		var out bytes.Buffer
		s, err := parseSettings(append([]string{"--credentials", path}, c.args...), env, &out)
		if err != nil {
			t.Errorf("%v with env %q: %v", c.args, c.env, err)
			continue
		}
		// An empty list must stay non-nil: nil would mean the default.
		if !slices.Equal(s.opts.ProtectedUsers, c.want) || s.opts.ProtectedUsers == nil {
			t.Errorf("%v with env %q: protected users %#v, want %v", c.args, c.env, s.opts.ProtectedUsers, c.want)
		}
	}
}

// TestRunLinksPanels runs the command against a minimal server until every
// panel is connected, then stops it as SIGINT would.
func TestRunLinksPanels(t *testing.T) {
	var mu sync.Mutex
	linked := map[string]bool{}
	var upgrader websocket.Upgrader
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serial, _, ok := r.BasicAuth()
		if r.URL.Path != sim.LinkPath || !ok {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		if err := conn.WriteJSON(panel.Frame{Type: panel.FrameHello, CheckinIntervalS: 1800}); err != nil {
			return
		}
		mu.Lock()
		linked[serial] = true
		mu.Unlock()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	path, _ := writeCredentials(t, "http://127.0.0.1:1", 5)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut apptest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--credentials", path, "--server", srv.URL, "--count", "3", "--status-every", "20ms"}, &out, &errOut, noEnv)
	}()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(out.String(), "connected 3/3") {
		select {
		case <-deadline:
			t.Fatalf("no status line with 3/3 connected; output:\n%s\nstderr:\n%s", out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("panelsim did not stop within 5s of the signal")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(linked) != 3 || linked["SN-3"] || linked["SN-4"] {
		t.Fatalf("linked %v, want exactly the first 3 panels", linked)
	}
	if !strings.Contains(out.String(), "stopped: ") {
		t.Fatalf("no final status line:\n%s", out.String())
	}
	if strings.Contains(out.String()+errOut.String(), "secret-") {
		t.Fatal("a secret was printed")
	}
}

// A fleet pointed where no server listens says so on its status line: how
// many dials were refused and the last error, not only "connected 0/N".
func TestStatusReportsDialFailures(t *testing.T) {
	path, _ := writeCredentials(t, fmt.Sprintf("http://127.0.0.1:%d", apptest.FreePort(t)), 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut apptest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--credentials", path, "--status-every", "20ms"}, &out, &errOut, noEnv)
	}()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(out.String(), "dial failures: refused ") || !strings.Contains(out.String(), "last error: ") {
		select {
		case <-deadline:
			t.Fatalf("no status line with refused dials and the last error; output:\n%s\nstderr:\n%s", out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), "connection refused") {
		t.Fatalf("last error does not say the connection was refused:\n%s", out.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("panelsim did not stop within 5s of the signal")
	}
}
