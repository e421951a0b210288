package bus_test

import (
	"context"
	"errors"
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

// A panel served on one node answers commands from another; a node that
// stops serving it leaves the requester told that nobody serves it.
// Control messages reach the serving node, at once when it sent them.
func TestPanels_CommandsAndControlReachTheServingNode(t *testing.T) {
	a, b := twoNodes(t)
	controls := newRecorder[bus.PanelControl]()
	stop, err := a.ServePanel("panel-1", bus.PanelServer{
		Command: func(cmd bus.Command, reply func(bus.Reply)) {
			reply(bus.Reply{OK: true, Data: []byte(`{"name":"` + cmd.Name + `"}`)})
		},
		Control: controls.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := b.RequestPanel(ctx, "panel-1", bus.Command{Name: "status.get", TimeoutMS: 1000})
	if err != nil || !r.OK || string(r.Data) != `{"name":"status.get"}` {
		t.Fatalf("reply %+v %v", r, err)
	}

	must(t, a.PublishPanelControl("panel-1", bus.PanelControl{Op: bus.ControlKick}))
	if got := controls.all(); len(got) != 1 || got[0].Op != bus.ControlKick {
		t.Fatalf("a local control message was handed %+v, want it at once", got)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	must(t, b.PublishPanelControl("panel-1", bus.PanelControl{Op: bus.ControlTakeover, LinkID: "link-2", ConnectedAt: at}))
	if got := controls.waitFor(t, 2); got[1].LinkID != "link-2" || !got[1].ConnectedAt.Equal(at) {
		t.Fatalf("the other node's control message arrived as %+v", got[1])
	}

	stop()
	if _, err := b.RequestPanel(ctx, "panel-1", bus.Command{Name: "status.get"}); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("a command to a panel nobody serves: %v, want ErrNoResponders", err)
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
