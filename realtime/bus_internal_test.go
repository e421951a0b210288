package realtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/wsframe"
	"github.com/panelsync/panelsync/wsframe/wsframetest"
)

// fakeBus is the bus between nodes held in memory. Like the real bus with
// the events this node commits, it hands a published event to the
// subscribers on the publisher's goroutine, stamped with the time of
// commit.
type fakeBus struct {
	mu     sync.Mutex
	events map[string][]*func(bus.Event)
}

func newFakeBus() *fakeBus { return &fakeBus{events: map[string][]*func(bus.Event){}} }

func (f *fakeBus) PublishEvent(accountID string, payload []byte) error {
	f.mu.Lock()
	subs := slices.Clone(f.events[accountID])
	f.mu.Unlock()
	for _, s := range subs {
		(*s)(bus.Event{AccountID: accountID, Payload: payload, CommittedAt: time.Now()})
	}
	return nil
}

func (f *fakeBus) SubscribeEvents(accountID string, fn func(bus.Event)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &fn
	f.events[accountID] = append(f.events[accountID], s)
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events[accountID] = slices.DeleteFunc(f.events[accountID], func(x *func(bus.Event)) bool { return x == s })
	}, nil
}

func (f *fakeBus) SubscribeGrantRevoked(func(bus.GrantRevoked)) (func(), error) {
	return func() {}, nil
}

func (f *fakeBus) SubscribeCredentialEnded(func(bus.CredentialEnded)) (func(), error) {
	return func() {}, nil
}

// fakeBusHub is a hub on a fake bus and an SQLite store, an account in
// it, and the Event Log that publishes the account's events to the bus.
type fakeBusHub struct {
	hub     *Hub
	store   *models.Store
	events  *models.EventLog
	account string
}

func newFakeBusHub(t *testing.T, cfg Config) *fakeBusHub {
	t.Helper()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	acct, err := store.CreateAccount(context.Background(), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBus()
	h := NewHub(cfg, store, b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	return &fakeBusHub{hub: h, store: store, events: models.NewEventLog(store, NewPublisher(b, h.log)), account: acct.ID}
}

func (fh *fakeBusHub) appendEvents(t *testing.T, n int) {
	t.Helper()
	evs := make([]models.NewEvent, n)
	for i := range evs {
		evs[i] = models.NewEvent{AccountID: fh.account, Type: models.EventSyncSucceeded, Severity: models.SeverityInfo, Message: "synced"}
	}
	if _, err := fh.events.Append(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// frameReader reads what the hub sends one client, frame by frame.
type frameReader struct {
	r *bufio.Reader
}

type testFrame struct {
	Type  string `json:"type"`
	Event *Event `json:"event"`
}

// connectClient serves a client of the account on a TCP socket and
// subscribes it to the whole account from now on.
func (fh *fakeBusHub) connectClient(t *testing.T) *frameReader {
	t.Helper()
	server, client := tcpPair(t)
	go fh.hub.Serve(context.Background(), wsframe.NewConn(server, nil, MaxClientFrameBytes), Viewer{LoginID: "login", AccountID: fh.account, Role: models.RoleOwner})
	if _, err := client.Write(wsframetest.MaskedFrame(0x81, []byte(`{"op":"subscribe"}`))); err != nil {
		t.Fatal(err)
	}
	fr := &frameReader{r: bufio.NewReader(client)}
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if f := fr.next(t); f.Type != "subscribed" {
		t.Fatalf("first frame %+v, want subscribed", f)
	}
	return fr
}

// next reads one text frame, as a server sends it: unmasked.
func (fr *frameReader) next(t *testing.T) testFrame {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(fr.r, head[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		_, _ = io.ReadFull(fr.r, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		_, _ = io.ReadFull(fr.r, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(fr.r, payload); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f testFrame
	if head[0]&0x0f == 0x1 {
		if err := json.Unmarshal(payload, &f); err != nil {
			t.Fatalf("frame %s: %v", payload, err)
		}
	}
	return f
}

// offsets reads events until it has n, and returns their offsets.
func (fr *frameReader) offsets(t *testing.T, n int) []int64 {
	t.Helper()
	var got []int64
	for len(got) < n {
		if f := fr.next(t); f.Event != nil {
			got = append(got, f.Event.Offset)
		}
	}
	return got
}

func TestHub_EventCommittedOnThisNode_ReachesTheSubscribedClientWithItsDeliveryLag(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	fh := newFakeBusHub(t, Config{Metrics: m})
	client := fh.connectClient(t)

	fh.appendEvents(t, 1)
	if got := client.offsets(t, 1); got[0] != 1 {
		t.Fatalf("client received offset %d, want 1", got[0])
	}
	var lag dto.Metric
	waitUntil(t, func() bool {
		_ = m.lag.(prometheus.Metric).Write(&lag)
		return lag.GetHistogram().GetSampleCount() == 1
	})
}

// A stream whose queue is full drops what the bus hands it rather than
// hold up the committing goroutine, and reads the dropped events back
// from the Event Log: the client still gets each once, in order.
func TestHub_LocalDeliveryOverflowingTheStream_EndsWithEveryEventOnceInOrder(t *testing.T) {
	fh := newFakeBusHub(t, Config{StreamQueue: 1, HealInterval: time.Hour})
	fh.appendEvents(t, 1)
	client := fh.connectClient(t)

	// Hold the stream's goroutine: a join it must answer on a channel
	// nobody reads yet. Everything committed meanwhile meets a full queue.
	fh.hub.mu.Lock()
	st := fh.hub.streams[fh.account]
	fh.hub.mu.Unlock()
	held := make(chan joinReply)
	st.join <- joinRequest{cursor: 0, reply: held}

	const n = 300
	fh.appendEvents(t, n)
	if queued := len(st.in); queued != cap(st.in) {
		t.Fatalf("%d events queued, want the stream's queue full", queued)
	}
	<-held

	got := client.offsets(t, n)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 2)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("client received offsets %v, want 2..%d once each in order", got, n+1)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
