package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/panel"
)

// fakeServer is the server side of the device protocol, just enough to
// drive simulated panels from tests: it checks Basic auth, says hello and
// hands each accepted link to the test.
type fakeServer struct {
	srv *httptest.Server
	// helloIntervalS is sent in hello as checkin_interval_s.
	helloIntervalS int

	mu      sync.Mutex
	secrets map[string]string // serial → secret
	links   []*fakeLink

	accepted chan *fakeLink
	attempts atomic.Int64 // upgrade requests, accepted or not
}

func newFakeServer(t testing.TB, helloIntervalS int) *fakeServer {
	t.Helper()
	fs := &fakeServer{
		helloIntervalS: helloIntervalS,
		secrets:        make(map[string]string),
		accepted:       make(chan *fakeLink, 1024),
	}
	upgrader := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LinkPath, func(w http.ResponseWriter, r *http.Request) {
		fs.attempts.Add(1)
		serial, secret, ok := r.BasicAuth()
		fs.mu.Lock()
		want, known := fs.secrets[serial]
		fs.mu.Unlock()
		if !ok || !known || secret != want {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		link := newFakeLink(serial, conn)
		fs.mu.Lock()
		fs.links = append(fs.links, link)
		fs.mu.Unlock()
		now := time.Now().UTC()
		if err := link.send(panel.Frame{Type: panel.FrameHello, ServerTime: &now, CheckinIntervalS: fs.helloIntervalS}); err != nil {
			return
		}
		fs.accepted <- link
		link.readLoop()
	})
	fs.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		fs.mu.Lock()
		for _, l := range fs.links {
			_ = l.conn.Close()
		}
		fs.mu.Unlock()
		fs.srv.Close()
	})
	return fs
}

// addPanel registers credentials the server accepts and returns them.
func (fs *fakeServer) addPanel(serial string) Credentials {
	c := Credentials{Serial: serial, Secret: "secret-of-" + serial, LocationID: "loc-" + serial, Name: "Home " + serial}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.secrets[serial] = c.Secret
	return c
}

// nextLink waits for the next accepted link.
func (fs *fakeServer) nextLink(t testing.TB) *fakeLink {
	t.Helper()
	select {
	case l := <-fs.accepted:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no panel linked within 5s")
		return nil
	}
}

// fakeLink is one panel's link as the server sees it. Frames from the
// panel are sorted into results, check-ins and events.
type fakeLink struct {
	serial   string
	conn     *websocket.Conn
	writeMu  sync.Mutex
	nextID   atomic.Int64
	results  chan panel.Frame
	checkins chan panel.Frame
	events   chan panel.Frame
	raw      chan []byte // every frame's bytes, for leak checks
	closed   chan struct{}
}

func newFakeLink(serial string, conn *websocket.Conn) *fakeLink {
	return &fakeLink{
		serial:   serial,
		conn:     conn,
		results:  make(chan panel.Frame, 32),
		checkins: make(chan panel.Frame, 32),
		events:   make(chan panel.Frame, 32),
		raw:      make(chan []byte, 1024),
		closed:   make(chan struct{}),
	}
}

func (l *fakeLink) send(f panel.Frame) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.conn.WriteJSON(f)
}

func (l *fakeLink) readLoop() {
	defer close(l.closed)
	for {
		_, data, err := l.conn.ReadMessage()
		if err != nil {
			return
		}
		select {
		case l.raw <- data:
		default:
		}
		var f panel.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			continue
		}
		var ch chan panel.Frame
		switch f.Type {
		case panel.FrameResult:
			ch = l.results
		case panel.FrameCheckin:
			ch = l.checkins
		case panel.FrameEvent:
			ch = l.events
		default:
			continue
		}
		select {
		case ch <- f:
		default:
		}
	}
}

// sendCommand sends a command and returns its id.
func (l *fakeLink) sendCommand(t testing.TB, name string, args any) string {
	t.Helper()
	id := fmt.Sprintf("c%d", l.nextID.Add(1))
	f := panel.Frame{Type: panel.FrameCommand, ID: id, Name: name}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		f.Args = raw
	}
	if err := l.send(f); err != nil {
		t.Fatalf("send %s: %v", name, err)
	}
	return id
}

// awaitResult waits up to timeout for the result of command id, and
// reports false if none came.
func (l *fakeLink) awaitResult(t testing.TB, id string, timeout time.Duration) (panel.Frame, bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-l.results:
			if f.ID == id {
				return f, true
			}
			t.Errorf("result for %s while waiting for %s", f.ID, id)
		case <-deadline:
			return panel.Frame{}, false
		}
	}
}

// call sends a command and waits for its result, failing the test if none
// comes within 5s.
func (l *fakeLink) call(t testing.TB, name string, args any) panel.Frame {
	t.Helper()
	id := l.sendCommand(t, name, args)
	f, ok := l.awaitResult(t, id, 5*time.Second)
	if !ok {
		t.Fatalf("no result for %s within 5s", name)
	}
	if f.OK == nil {
		t.Fatalf("%s result has no ok field", name)
	}
	return f
}

// callOK calls a command that must succeed and decodes its data.
func (l *fakeLink) callOK(t testing.TB, name string, args, into any) {
	t.Helper()
	f := l.call(t, name, args)
	if !*f.OK {
		t.Fatalf("%s failed: %+v", name, f.Error)
	}
	if into != nil {
		if err := json.Unmarshal(f.Data, into); err != nil {
			t.Fatalf("decode %s data: %v", name, err)
		}
	}
}

// callErr calls a command that must fail and returns its error.
func (l *fakeLink) callErr(t testing.TB, name string, args any) panel.CommandError {
	t.Helper()
	f := l.call(t, name, args)
	if *f.OK || f.Error == nil {
		t.Fatalf("%s succeeded, want an error", name)
	}
	return *f.Error
}

// awaitEvent waits for the next event frame.
func (l *fakeLink) awaitEvent(t testing.TB, timeout time.Duration) panel.PanelEvent {
	t.Helper()
	select {
	case f := <-l.events:
		if f.Event == nil {
			t.Fatal("event frame without event")
		}
		return *f.Event
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
		return panel.PanelEvent{}
	}
}

// awaitCheckin waits for the next check-in frame.
func (l *fakeLink) awaitCheckin(t testing.TB, timeout time.Duration) panel.Frame {
	t.Helper()
	select {
	case f := <-l.checkins:
		return f
	case <-time.After(timeout):
		t.Fatalf("no check-in within %v", timeout)
		return panel.Frame{}
	}
}

// runPanel runs p against the server until the test ends.
func runPanel(t testing.TB, p *Panel, baseURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, baseURL) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
	})
}

// linkedPanel starts a panel with opts against a fresh fake server and
// returns it with its link, once the panel has checked in.
func linkedPanel(t testing.TB, serial string, opts Options) (*Panel, *fakeLink, *fakeServer) {
	t.Helper()
	fs := newFakeServer(t, 1800)
	p := NewPanel(fs.addPanel(serial), opts)
	runPanel(t, p, fs.srv.URL)
	link := fs.nextLink(t)
	link.awaitCheckin(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	return p, link, fs
}
