package bus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/panelsync/panelsync/bus"
)

// twoNodes opens two buses on one NATS server that listens, as two nodes
// of a deployment share one.
func twoNodes(t *testing.T) (a, b *bus.Bus) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	open := func(name string) *bus.Bus {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := bus.Open(ctx, bus.Config{URL: ns.ClientURL(), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	return open("a"), open("b")
}

// recorder keeps what a subscription was handed.
type recorder[T any] struct {
	mu   sync.Mutex
	got  []T
	more chan struct{}
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{more: make(chan struct{}, 1024)} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
	r.more <- struct{}{}
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.got...)
}

// waitFor waits until the recorder holds n values.
func (r *recorder[T]) waitFor(t *testing.T, n int) []T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(r.all()) < n {
		select {
		case <-r.more:
		case <-timeout:
			t.Fatalf("got %d values, want %d", len(r.all()), n)
		}
	}
	return r.all()
}

// An event committed on a node reaches that node's subscribers before the
// publish returns, with its commit time, and once: NATS does not echo it
// back. Another node's events arrive over NATS.
func TestEvents_LocalAtOnceAndOnce_OthersOverNATS(t *testing.T) {
	a, b := twoNodes(t)
	one, all := newRecorder[bus.Event](), newRecorder[bus.Event]()
	unsubscribe, err := a.SubscribeEvents("acct-1", one.add)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	unsubscribeAll, err := a.SubscribeAllEvents(all.add)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribeAll()

	before := time.Now()
	if err := a.PublishEvent("acct-1", []byte(`{"offset":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := one.all(); len(got) != 1 || string(got[0].Payload) != `{"offset":1}` || got[0].AccountID != "acct-1" ||
		got[0].CommittedAt.Before(before) || got[0].CommittedAt.After(time.Now()) {
		t.Fatalf("a local event was handed %+v, want it at once with its commit time", got)
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// NATS delivers in order on a connection: once the other node's event
	// arrives, an echo of the local one would have arrived before it.
	if err := b.PublishEvent("acct-1", []byte(`{"offset":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishEvent("acct-2", []byte(`{"offset":1}`)); err != nil {
		t.Fatal(err)
	}
	got := one.waitFor(t, 2)
	if len(got) != 2 || string(got[1].Payload) != `{"offset":2}` || got[1].CommittedAt.IsZero() {
		t.Fatalf("the account's subscriber was handed %+v, want its local event once and the other node's", got)
	}
	if got := all.waitFor(t, 3); len(got) != 3 || got[2].AccountID != "acct-2" {
		t.Fatalf("the subscriber to every account was handed %+v", got)
	}

	unsubscribe()
	if err := a.PublishEvent("acct-1", []byte(`{"offset":3}`)); err != nil {
		t.Fatal(err)
	}
	if got := one.all(); len(got) != 2 {
		t.Fatalf("an unsubscribed function was handed %+v", got[2:])
	}
}

func TestControl_ReachesThisNodeAtOnceAndTheOthers(t *testing.T) {
	a, b := twoNodes(t)
	var grants []*recorder[bus.GrantRevoked]
	var ended []*recorder[bus.CredentialEnded]
	var wakes []*recorder[struct{}]
	for _, n := range []*bus.Bus{a, b} {
		g, c, w := newRecorder[bus.GrantRevoked](), newRecorder[bus.CredentialEnded](), newRecorder[struct{}]()
		for _, subscribe := range []func() (func(), error){
			func() (func(), error) { return n.SubscribeGrantRevoked(g.add) },
			func() (func(), error) { return n.SubscribeCredentialEnded(c.add) },
			func() (func(), error) { return n.NewWaker().SubscribeWake(func() { w.add(struct{}{}) }) },
		} {
			unsubscribe, err := subscribe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(unsubscribe)
		}
		grants, ended, wakes = append(grants, g), append(ended, c), append(wakes, w)
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}

	must(t, a.PublishGrantRevoked("login-1", "acct-1"))
	must(t, a.PublishSessionEnded("session-1"))
	must(t, a.PublishAPIKeyRevoked("key-1"))
	must(t, a.PublishLoginEnded("login-2"))
	a.NewWaker().PublishWake()
	if len(grants[0].all()) != 1 || len(ended[0].all()) != 3 || len(wakes[0].all()) != 1 {
		t.Fatal("this node's control messages did not reach its own subscribers before the publish returned")
	}
	if got := grants[1].waitFor(t, 1); got[0] != (bus.GrantRevoked{LoginID: "login-1", AccountID: "acct-1"}) {
		t.Fatalf("the other node heard %+v", got)
	}
	want := []bus.CredentialEnded{{SessionID: "session-1"}, {APIKeyID: "key-1"}, {LoginID: "login-2"}}
	if got := ended[1].waitFor(t, 3); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("the other node heard %+v, want %+v", got, want)
	}
	wakes[1].waitFor(t, 1)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// holding serves the panels in held on a node: their commands are
// answered with the node's name and the panel's, and every command and
// control message it is handed is recorded.
type holding struct {
	node     string
	held     map[string]bool
	commands *recorder[string]
	controls *recorder[control]
	// stop ends the serving before the test does.
	stop func()
}

// control is a control message as a node's server is handed it.
type control struct {
	PanelID string
	bus.PanelControl
}

func serve(t *testing.T, n *bus.Bus, node string, held ...string) *holding {
	t.Helper()
	h := &holding{node: node, held: map[string]bool{}, commands: newRecorder[string](), controls: newRecorder[control]()}
	for _, p := range held {
		h.held[p] = true
	}
	stop, err := n.ServePanels(node, bus.PanelServer{
		Command: func(panelID string, cmd bus.Command, reply func(bus.Reply)) bool {
			h.commands.add(panelID + " " + cmd.Name)
			if !h.held[panelID] {
				return false
			}
			reply(bus.Reply{OK: true, Data: []byte(`"` + node + ` ran ` + cmd.Name + ` on ` + panelID + `"`)})
			return true
		},
		Control: func(panelID string, ctl bus.PanelControl) { h.controls.add(control{panelID, ctl}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	h.stop = stop
	return h
}

// A command goes to the node it is sent to, naming its panel, and only
// there. A node that does not hold the panel says so at once, as does a
// node subject nobody listens on, and a node that stopped serving.
func TestPanels_CommandsGoToTheNamedNode(t *testing.T) {
	a, b := twoNodes(t)
	onA, onB := serve(t, a, "node-a", "panel-1"), serve(t, b, "node-b", "panel-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r, err := b.RequestPanel(ctx, "node-a", "panel-1", bus.Command{Name: "status.get", TimeoutMS: 1000})
	if err != nil || !r.OK || string(r.Data) != `"node-a ran status.get on panel-1"` {
		t.Fatalf("reply %+v %v, want node-a's answer for panel-1", r, err)
	}
	for _, to := range []struct{ node, panel string }{
		{"node-a", "panel-2"},
		{"node-nobody", "panel-1"},
	} {
		began := time.Now()
		_, err := b.RequestPanel(ctx, to.node, to.panel, bus.Command{Name: "status.get", TimeoutMS: 1000})
		if !errors.Is(err, bus.ErrNoResponders) || time.Since(began) > 2*time.Second {
			t.Fatalf("a command for %s on %s: %v after %v, want ErrNoResponders at once", to.panel, to.node, err, time.Since(began))
		}
	}
	if got := onB.commands.all(); len(got) != 0 {
		t.Fatalf("node-b was handed commands sent to other nodes: %v", got)
	}

	onA.stop()
	if _, err := b.RequestPanel(ctx, "node-a", "panel-1", bus.Command{Name: "status.get"}); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("a command to a node that stopped serving: %v, want ErrNoResponders", err)
	}
	for _, node := range []string{"", "node a", "node.*", "node..a", ">"} {
		if _, err := a.ServePanels(node, bus.PanelServer{}); err == nil {
			t.Errorf("node ID %q was accepted for a subject", node)
		}
		if _, err := b.RequestPanel(ctx, node, "panel-1", bus.Command{Name: "status.get"}); err == nil || errors.Is(err, bus.ErrNoResponders) {
			t.Errorf("a command to node ID %q: %v, want it refused", node, err)
		}
	}
}

// A panel's control message reaches every node's server once, with the
// panel it is for: this node's at once, the others over NATS.
func TestPanels_ControlReachesEveryNodeOnce(t *testing.T) {
	a, b := twoNodes(t)
	onA, onB := serve(t, a, "node-a"), serve(t, b, "node-b")
	at := time.Now().UTC().Truncate(time.Millisecond)
	sent := []struct {
		from *bus.Bus
		to   *holding
		ctl  control
	}{
		{a, onA, control{"panel-1", bus.PanelControl{Op: bus.ControlKick}}},
		{b, onB, control{"panel-2", bus.PanelControl{Op: bus.ControlTakeover, LinkID: "link-2", ConnectedAt: at}}},
		{a, onA, control{"panel-3", bus.PanelControl{Op: bus.ControlKick}}},
		{b, onB, control{"panel-4", bus.PanelControl{Op: bus.ControlKick}}},
	}
	same := func(x, y control) bool {
		return x.PanelID == y.PanelID && x.Op == y.Op && x.LinkID == y.LinkID && x.ConnectedAt.Equal(y.ConnectedAt)
	}
	var want []control
	for _, m := range sent {
		must(t, m.from.PublishPanelControl(m.ctl.PanelID, m.ctl.PanelControl))
		if !slices.ContainsFunc(m.to.controls.all(), func(c control) bool { return same(c, m.ctl) }) {
			t.Fatalf("%s was not handed its own %s for %s before the publish returned", m.to.node, m.ctl.Op, m.ctl.PanelID)
		}
		// Once the server has the message, the other node's next one
		// reaches this node after any echo of it would have.
		must(t, m.from.Ping(context.Background()))
		want = append(want, m.ctl)
	}
	for _, h := range []*holding{onA, onB} {
		got := h.controls.waitFor(t, len(want))
		slices.SortFunc(got, func(x, y control) int { return strings.Compare(x.PanelID, y.PanelID) })
		if !slices.EqualFunc(got, want, same) {
			t.Errorf("%s was handed %+v, want each message once: %+v", h.node, got, want)
		}
	}
}

func TestEmbedded_OneNodeNeedsNoServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{Name: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Embedded() {
		t.Fatal("a bus without a URL is not embedded")
	}
	if err := b.Available(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
