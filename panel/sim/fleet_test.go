package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/panel"
)

func TestFleet(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, 1800)
	var creds []Credentials
	for i := range 60 {
		creds = append(creds, fs.addPanel(fmt.Sprintf("SN-FLEET-%03d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := RunFleet(ctx, fs.srv.URL, creds, Options{Users: 5})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	defer waitCancel()
	if err := fleet.WaitConnected(waitCtx); err != nil {
		t.Fatal(err)
	}
	if n := fleet.ConnectedCount(); n != 60 || fleet.Len() != 60 {
		t.Fatalf("%d of %d connected, want 60 of 60", n, fleet.Len())
	}
	p := fleet.Panel("SN-FLEET-007")
	if p == nil || p.Serial() != "SN-FLEET-007" || len(p.Users()) != 5 {
		t.Fatal("Panel(serial) did not find the panel")
	}
	if fleet.Panel("nope") != nil {
		t.Fatal("Panel found a serial that is not in the fleet")
	}
	// Each link answers for its own panel.
	seen := map[string]bool{}
	for range 60 {
		link := fs.nextLink(t)
		link.awaitCheckin(t, 5*time.Second)
		seen[link.serial] = true
	}
	if len(seen) != 60 {
		t.Fatalf("%d distinct serials linked, want 60", len(seen))
	}
	if st := fleet.Stats(); st.Connects != 60 || st.Disconnects != 0 {
		t.Fatalf("fleet stats %+v, want 60 connects and no disconnects", st)
	}

	cancel()
	done := make(chan struct{})
	go func() { fleet.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("fleet did not stop within 5s")
	}
	if n := fleet.ConnectedCount(); n != 0 {
		t.Fatalf("%d panels still connected after stop", n)
	}
	if p.State() != StateStopped {
		t.Fatalf("state after stop = %v", p.State())
	}
}

func TestRunFleetRejectsBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := Credentials{Serial: "A", Secret: "s"}
	cases := map[string]func() error{
		"duplicate serial": func() error {
			_, err := RunFleet(ctx, "http://127.0.0.1:1", []Credentials{a, a}, Options{})
			return err
		},
		"no panels": func() error { _, err := RunFleet(ctx, "http://127.0.0.1:1", nil, Options{}); return err },
		"bad url":   func() error { _, err := RunFleet(ctx, "127.0.0.1:1", []Credentials{a}, Options{}); return err },
		"bad options": func() error {
			_, err := RunFleet(ctx, "http://127.0.0.1:1", []Credentials{a}, Options{TimeoutRate: -1})
			return err
		},
	}
	for name, run := range cases {
		if run() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCredentialsFileRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "panels.json")
	want := CredentialsFile{
		Server: "http://127.0.0.1:8080",
		Panels: []Credentials{
			{Serial: "SN-1", Secret: "s1", LocationID: "loc-1", Name: "Lake House"},
			{Serial: "SN-2", Secret: "s2"},
		},
	}
	if err := WriteCredentialsFile(path, want); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("credentials file mode %o, want 600", mode)
	}
	got, err := LoadCredentialsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if s := fmt.Sprint(want.Panels[0]) + fmt.Sprintf("%#v", want.Panels[0]); strings.Contains(s, "s1") {
		t.Fatalf("printing credentials shows the secret: %s", s)
	}
}

func TestCredentialsFileValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := map[string]string{
		"not json":        `{"panels":`,
		"no panels":       `{"server":"http://x","panels":[]}`,
		"empty serial":    `{"panels":[{"serial":"","secret":"s"}]}`,
		"empty secret":    `{"panels":[{"serial":"A","secret":""}]}`,
		"colon in serial": `{"panels":[{"serial":"A:B","secret":"s"}]}`,
		"duplicate":       `{"panels":[{"serial":"A","secret":"s"},{"serial":"A","secret":"t"}]}`,
		"bad server":      `{"server":"localhost:8080","panels":[{"serial":"A","secret":"s"}]}`,
	}
	for name, content := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadCredentialsFile(path)
		if err == nil {
			t.Errorf("%s: loaded without error", name)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := LoadCredentialsFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
	if err := WriteCredentialsFile(filepath.Join(dir, "w.json"), CredentialsFile{}); err == nil {
		t.Error("an empty credentials file was written")
	}
}

func TestLinkURL(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"http://127.0.0.1:8080":       "ws://127.0.0.1:8080/device/v1/link",
		"https://sync.example.com/":   "wss://sync.example.com/device/v1/link",
		"http://host/prefix":          "ws://host/prefix/device/v1/link",
		"ws://127.0.0.1:1/?x=1#frag":  "ws://127.0.0.1:1/device/v1/link",
		"wss://sync.example.com:8443": "wss://sync.example.com:8443/device/v1/link",
	}
	for in, want := range good {
		got, err := LinkURL(in)
		if err != nil || got != want {
			t.Errorf("LinkURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://user:pw@host"} {
		if _, err := LinkURL(bad); err == nil {
			t.Errorf("LinkURL(%q) accepted", bad)
		}
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for st, want := range map[State]string{StateIdle: "idle", StateConnecting: "connecting", StateConnected: "connected", StateAuthRejected: "auth_rejected", StateStopped: "stopped"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(st), st.String(), want)
		}
	}
}

// BenchmarkCommandRoundTrip measures one status.get from the server's
// side through a simulated panel.
func BenchmarkCommandRoundTrip(b *testing.B) {
	fs := newFakeServer(b, 1800)
	p := NewPanel(fs.addPanel("SN-BENCH"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, fs.srv.URL) }()
	link := fs.nextLink(b)
	for b.Loop() {
		id := fmt.Sprintf("c%d", link.nextID.Add(1))
		if err := link.send(panel.Frame{Type: panel.FrameCommand, ID: id, Name: panel.CmdStatusGet}); err != nil {
			b.Fatal(err)
		}
		for f := range link.results {
			if f.ID == id {
				break
			}
		}
	}
}
