package panel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// fakeBus is a bus between nodes held in memory, for one node: a control
// message reaches the node's server at once, as the real bus delivers
// this node's own messages, and a request to another node answers as the
// test says.
type fakeBus struct {
	mu        sync.Mutex
	serving   *bus.PanelServer
	available error
	request   func(nodeID, panelID string, cmd bus.Command) (bus.Reply, error)
}

func newFakeBus() *fakeBus { return &fakeBus{} }

func (f *fakeBus) Available(context.Context) error { return f.available }

func (f *fakeBus) RequestPanel(_ context.Context, nodeID, panelID string, cmd bus.Command) (bus.Reply, error) {
	if f.request == nil {
		return bus.Reply{}, bus.ErrNoResponders
	}
	return f.request(nodeID, panelID, cmd)
}

func (f *fakeBus) PublishPanelControl(panelID string, ctl bus.PanelControl) error {
	if s, ok := f.server(); ok {
		s.Control(panelID, ctl)
	}
	return nil
}

func (f *fakeBus) ServePanels(_ string, s bus.PanelServer) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving = &s
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.serving = nil
	}, nil
}

func (f *fakeBus) server() (bus.PanelServer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.serving == nil {
		return bus.PanelServer{}, false
	}
	return *f.serving, true
}

// fakeSocket is a panel's socket: the test reads what the link writes
// from written, and the close code it ended with from closeCode.
type fakeSocket struct {
	written   chan []byte
	read      chan []byte
	closed    chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	closeCode int
}

func newFakeSocket() *fakeSocket {
	return &fakeSocket{written: make(chan []byte, 64), read: make(chan []byte), closed: make(chan struct{})}
}

func (s *fakeSocket) ReadMessage() (bool, []byte, error) {
	select {
	case b := <-s.read:
		return true, b, nil
	case <-s.closed:
		return false, nil, errors.New("socket closed")
	}
}

// Write takes whole frames, as the link writes them: a text frame's
// payload goes to written, a close frame's code is kept.
func (s *fakeSocket) Write(frames []byte, _ time.Time) error {
	r := bytes.NewReader(frames)
	for r.Len() > 0 {
		f, err := ws.ReadFrame(r)
		if err != nil {
			return err
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			s.mu.Lock()
			s.closeCode = int(code)
			s.mu.Unlock()
		case ws.OpText:
			select {
			case s.written <- f.Payload:
			case <-s.closed:
				return errors.New("socket closed")
			}
		}
	}
	return nil
}

func (s *fakeSocket) SetReadDeadline(time.Time) error { return nil }
func (s *fakeSocket) OnPing(func([]byte))             {}
func (s *fakeSocket) OnPong(func())                   {}
func (s *fakeSocket) OnClose(func(int))               {}
func (s *fakeSocket) Close() error                    { s.closeOnce.Do(func() { close(s.closed) }); return nil }
func (s *fakeSocket) code() int                       { s.mu.Lock(); defer s.mu.Unlock(); return s.closeCode }

// nextFrame is the next frame the link wrote to the panel.
func (s *fakeSocket) nextFrame(t *testing.T) Frame {
	t.Helper()
	select {
	case b := <-s.written:
		var f Frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("the link wrote nothing to the panel")
		return Frame{}
	}
}

// fakeBusLink is a link on a fake bus and an SQLite store holding one
// panel, which it returns.
func fakeBusLink(t *testing.T) (*Link, *fakeBus, models.Panel) {
	t.Helper()
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	acct, err := store.CreateAccount(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	name := "HQ"
	_, err = store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
		Settings: models.LocationSettings{Name: &name}, PanelSerial: "FB-0001", SecretHash: strings.Repeat("0", 64),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.PanelBySerial(ctx, "FB-0001")
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBus()
	l, err := NewLink(LinkConfig{NodeID: "node-x", CommandTimeout: 5 * time.Second}, store, models.NewEventLog(store, discardPublisher{}), b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Close(stop)
	})
	return l, b, p
}

// linkPanel serves the panel on a fake socket until the test ends, and
// returns once the panel has been greeted.
func linkPanel(t *testing.T, l *Link, p models.Panel) (*fakeSocket, <-chan struct{}) {
	t.Helper()
	sock := newFakeSocket()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Serve(context.Background(), p, sock)
	}()
	t.Cleanup(func() {
		_ = sock.Close()
		<-done
	})
	if f := sock.nextFrame(t); f.Type != FrameHello {
		t.Fatalf("first frame %+v, want hello", f)
	}
	return sock, done
}

// serveOverTheBus hands the link a command for the panel as the bus does
// when another node sends one, and returns whether the link took it and
// its reply, if it sends one.
func serveOverTheBus(t *testing.T, b *fakeBus, panelID string, cmd bus.Command) (held bool, replied <-chan bus.Reply) {
	t.Helper()
	s, ok := b.server()
	if !ok {
		t.Fatal("the link does not serve its node's commands on the bus")
	}
	out := make(chan bus.Reply, 1)
	return s.Command(panelID, cmd, func(r bus.Reply) { out <- r }), out
}

func TestLink_KickOverTheBus_ClosesThePanelsConnectionWith4003(t *testing.T) {
	l, b, p := fakeBusLink(t)
	sock, done := linkPanel(t, l, p)

	if err := l.Kick(p.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the kicked panel's connection is still served")
	}
	if got := sock.code(); got != closeRevoked {
		t.Fatalf("closed with %d, want %d", got, closeRevoked)
	}
	if held, _ := serveOverTheBus(t, b, p.ID, bus.Command{Name: CmdStatusGet, TimeoutMS: 1000}); held {
		t.Fatal("the node still takes commands for a panel whose connection closed")
	}
}

func TestLink_CommandFromAnotherNode_IsAnsweredWithThePanelsResult(t *testing.T) {
	l, b, p := fakeBusLink(t)
	sock, _ := linkPanel(t, l, p)

	held, replied := serveOverTheBus(t, b, p.ID, bus.Command{Name: CmdStatusGet, TimeoutMS: 5000})
	if !held {
		t.Fatal("the node refused a command for the panel it holds")
	}
	cmd := sock.nextFrame(t)
	if cmd.Type != FrameCommand || cmd.Name != CmdStatusGet {
		t.Fatalf("the panel was sent %+v, want the status.get command", cmd)
	}
	sock.read <- fmt.Appendf(nil, `{"type":"result","id":%q,"ok":true,"data":{"armed":false}}`, cmd.ID)
	select {
	case r := <-replied:
		if !r.OK || string(r.Data) != `{"armed":false}` {
			t.Fatalf("reply %+v, want the panel's data", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other node got no reply")
	}

	_, replied = serveOverTheBus(t, b, p.ID, bus.Command{})
	if r := <-replied; r.OK || r.Error == nil || r.Error.Code != FailPanelError {
		t.Fatalf("a malformed request was answered %+v, want a panel_error", r)
	}
	held, replied = serveOverTheBus(t, b, "a-panel-held-elsewhere", bus.Command{Name: CmdStatusGet, TimeoutMS: 5000})
	if held || len(replied) != 0 {
		t.Fatal("the node took a command for a panel it does not hold, instead of saying so")
	}
}

// linkedElsewhere records the panel as linked to nodeID, as that node
// does when the panel links to it.
func linkedElsewhere(t *testing.T, l *Link, panelID, nodeID string) {
	t.Helper()
	if _, err := l.store.MarkPanelConnected(context.Background(), panelID, models.NewID(), nodeID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
}

func TestLink_SendToAPanelOnAnotherNode_ReportsWhatTheBusSays(t *testing.T) {
	cases := []struct {
		name      string
		available error
		requested error
		reply     bus.Reply
		wantCode  string
	}{
		{"bus down", bus.ErrUnavailable, nil, bus.Reply{}, FailBusUnavailable},
		{"bus dropped on the way", nil, fmt.Errorf("%w: connection lost", bus.ErrUnavailable), bus.Reply{}, FailBusUnavailable},
		{"the node does not serve it", nil, bus.ErrNoResponders, bus.Reply{}, FailDisconnected},
		{"no answer in time", nil, context.DeadlineExceeded, bus.Reply{}, FailTimeout},
		{"the panel refused", nil, nil, bus.Reply{Error: &bus.ReplyError{Code: FailBusy, Message: "busy"}}, FailBusy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, b, p := fakeBusLink(t)
			linkedElsewhere(t, l, p.ID, "node-y")
			b.available = tc.available
			b.request = func(nodeID, panelID string, cmd bus.Command) (bus.Reply, error) {
				if nodeID != "node-y" || panelID != p.ID || cmd.Name != CmdStatusGet || cmd.TimeoutMS <= 0 {
					t.Errorf("requested %s %s %+v, want status.get for the panel on node-y", nodeID, panelID, cmd)
				}
				return tc.reply, tc.requested
			}
			_, err := l.Send(context.Background(), p.ID, CmdStatusGet, nil)
			if f, ok := AsCommandFailure(err); !ok || f.Code != tc.wantCode {
				t.Fatalf("Send failed with %v, want %s", err, tc.wantCode)
			}
		})
	}
}

// A panel the directory shows as not connected, or as connected to this
// node which does not hold it (its link is closing), is reported
// disconnected at once, without a trip over the bus.
func TestLink_SendToAPanelNoNodeHolds_IsDisconnectedWithoutTheBus(t *testing.T) {
	for name, recordedOn := range map[string]string{"not connected": "", "recorded on this node": "node-x"} {
		t.Run(name, func(t *testing.T) {
			l, b, p := fakeBusLink(t)
			if recordedOn != "" {
				linkedElsewhere(t, l, p.ID, recordedOn)
			}
			b.request = func(nodeID, _ string, _ bus.Command) (bus.Reply, error) {
				t.Errorf("a command to a panel no node holds went over the bus to %s", nodeID)
				return bus.Reply{}, bus.ErrNoResponders
			}
			_, err := l.Send(context.Background(), p.ID, CmdStatusGet, nil)
			if f, ok := AsCommandFailure(err); !ok || f.Code != FailDisconnected {
				t.Fatalf("Send failed with %v, want %s", err, FailDisconnected)
			}
		})
	}
}

// A panel that left the node the directory named while the command was on
// its way is followed, once, to the node it linked to since; a panel
// still recorded where the command found nobody is not asked again.
func TestLink_SendToAPanelThatMoved_FollowsItOnce(t *testing.T) {
	cases := []struct {
		name string
		// movesTo is where the panel links while the first request is on
		// its way; empty when it stays recorded on node-a.
		movesTo   string
		lastReply error
		wantNodes []string
		wantCode  string
	}{
		{"moved to node B", "node-b", nil, []string{"node-a", "node-b"}, ""},
		{"moved to node B, gone from there too", "node-b", bus.ErrNoResponders, []string{"node-a", "node-b"}, FailDisconnected},
		{"still recorded on node A", "", nil, []string{"node-a"}, FailDisconnected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, b, p := fakeBusLink(t)
			linkedElsewhere(t, l, p.ID, "node-a")
			var asked []string
			b.request = func(nodeID, _ string, _ bus.Command) (bus.Reply, error) {
				asked = append(asked, nodeID)
				if nodeID == "node-a" {
					if tc.movesTo != "" {
						linkedElsewhere(t, l, p.ID, tc.movesTo)
					}
					return bus.Reply{}, bus.ErrNoResponders
				}
				return bus.Reply{OK: true, Data: []byte(`{}`)}, tc.lastReply
			}
			_, err := l.Send(context.Background(), p.ID, CmdStatusGet, nil)
			if !slices.Equal(asked, tc.wantNodes) {
				t.Errorf("asked %v, want %v", asked, tc.wantNodes)
			}
			f, failed := AsCommandFailure(err)
			switch {
			case tc.wantCode == "" && err != nil:
				t.Fatalf("Send to the panel where it moved: %v", err)
			case tc.wantCode != "" && (!failed || f.Code != tc.wantCode):
				t.Fatalf("Send failed with %v, want %s", err, tc.wantCode)
			}
		})
	}
}

func TestLink_SendToAPanelHeldHere_NeverUsesTheBus(t *testing.T) {
	l, b, p := fakeBusLink(t)
	b.available = bus.ErrUnavailable
	b.request = func(string, string, bus.Command) (bus.Reply, error) {
		t.Error("a command to a panel held here went over the bus")
		return bus.Reply{}, bus.ErrUnavailable
	}
	sock, _ := linkPanel(t, l, p)
	answered := make(chan error, 1)
	go func() {
		_, err := l.Send(context.Background(), p.ID, CmdStatusGet, nil)
		answered <- err
	}()
	cmd := sock.nextFrame(t)
	sock.read <- fmt.Appendf(nil, `{"type":"result","id":%q,"ok":true,"data":{}}`, cmd.ID)
	if err := <-answered; err != nil {
		t.Fatalf("a command to a panel held here with the bus down: %v", err)
	}
}
