package panel

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/wsframe"
)

// heldRecorder is a recorder whose batches are written by a function that
// waits for the test to let each one go, and that notes what each batch
// held.
type heldRecorder struct {
	*linkRecorder
	release chan struct{}
	// started hears of each batch as its writing starts.
	started chan struct{}

	mu      sync.Mutex
	batches [][]string
}

func startHeldRecorder(t *testing.T) *heldRecorder {
	t.Helper()
	h := &heldRecorder{release: make(chan struct{}), started: make(chan struct{}, 16)}
	h.linkRecorder = startLinkRecorder(1, func(_ context.Context, batch []*pendingLink) {
		h.started <- struct{}{}
		<-h.release
		h.mu.Lock()
		n := len(h.batches)
		var links []string
		for _, p := range batch {
			links = append(links, p.c.linkID)
			p.before = models.PanelHolder{Connection: models.PanelConnected, NodeID: "batch-" + string(rune('0'+n))}
		}
		h.batches = append(h.batches, links)
		h.mu.Unlock()
	})
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		h.close()
	})
	return h
}

// waitWaiting waits until n links wait behind the batch being recorded.
func (h *heldRecorder) waitWaiting(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.linkRecorder.mu.Lock()
		waiting := len(h.linkRecorder.waiting)
		h.linkRecorder.mu.Unlock()
		if waiting == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d links waiting, want %d", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type recorded struct {
	linkID string
	before models.PanelHolder
	err    error
}

func recordAsync(r *linkRecorder, panelID, linkID string, out chan<- recorded) {
	c := &deviceConn{panelID: panelID, linkID: linkID}
	go func() {
		before, err := r.recordLink(c)
		out <- recorded{linkID: linkID, before: before, err: err}
	}()
}

// TestLinkRecorder_LinksArrivingDuringABatch_AreRecordedTogetherNext: a
// link that arrives alone is recorded alone and at once; the links that
// arrive while it is written go together in the next batch, except a
// panel's second link, which waits for the batch after so that the later
// link is recorded last.
func TestLinkRecorder_LinksArrivingDuringABatch_AreRecordedTogetherNext(t *testing.T) {
	h := startHeldRecorder(t)
	out := make(chan recorded, 8)
	recordAsync(h.linkRecorder, "panel-a", "a1", out)
	<-h.started // a1 is being written, alone.
	recordAsync(h.linkRecorder, "panel-b", "b1", out)
	h.waitWaiting(t, 1)
	recordAsync(h.linkRecorder, "panel-c", "c1", out)
	h.waitWaiting(t, 2)
	recordAsync(h.linkRecorder, "panel-b", "b2", out)
	h.waitWaiting(t, 3)
	recordAsync(h.linkRecorder, "panel-d", "d1", out)
	h.waitWaiting(t, 4)
	close(h.release)

	got := map[string]recorded{}
	for range 5 {
		r := <-out
		got[r.linkID] = r
	}
	h.mu.Lock()
	batches := h.batches
	h.mu.Unlock()
	want := [][]string{{"a1"}, {"b1", "c1", "d1"}, {"b2"}}
	if strings.Join(flatten(batches), " ") != strings.Join(flatten(want), " ") || len(batches) != len(want) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
	for linkID, node := range map[string]string{"a1": "batch-0", "b1": "batch-1", "d1": "batch-1", "b2": "batch-2"} {
		if r := got[linkID]; r.err != nil || r.before.NodeID != node {
			t.Errorf("link %s heard (%+v, %v), want what %s found", linkID, r.before, r.err, node)
		}
	}
}

func flatten(batches [][]string) []string {
	var out []string
	for _, b := range batches {
		out = append(out, strings.Join(b, ","))
	}
	return out
}

// TestLinkRecorder_WhenTheNodeStops_TheLinksStillWaitingFail: the batch
// being written finishes, the links behind it are told the node is
// stopping instead of being written, and so is a link that arrives after.
func TestLinkRecorder_WhenTheNodeStops_TheLinksStillWaitingFail(t *testing.T) {
	h := startHeldRecorder(t)
	out := make(chan recorded, 4)
	recordAsync(h.linkRecorder, "panel-a", "a1", out)
	<-h.started
	recordAsync(h.linkRecorder, "panel-b", "b1", out)
	h.waitWaiting(t, 1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		h.close()
	}()
	// Stopping waits for the batch being written.
	select {
	case <-closed:
		t.Fatal("the recorder stopped while a batch was being written")
	case r := <-out:
		t.Fatalf("link %s answered before its batch was written: %v", r.linkID, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(h.release)
	<-closed
	got := map[string]recorded{}
	for range 2 {
		r := <-out
		got[r.linkID] = r
	}
	if got["a1"].err != nil {
		t.Errorf("the link being written failed: %v", got["a1"].err)
	}
	if got["b1"].err != errLinkRecorderStopped {
		t.Errorf("the link left waiting heard %v, want %v", got["b1"].err, errLinkRecorderStopped)
	}
	if _, err := h.recordLink(&deviceConn{panelID: "panel-c", linkID: "c1"}); err != errLinkRecorderStopped {
		t.Errorf("a link after the stop heard %v, want %v", err, errLinkRecorderStopped)
	}
}

// TestRecordLinks_ABatchWithAPanelDeleted_RecordsTheOthersWithTheirEvents:
// one batch records several links; the panel that was not connected gets
// its panel.connected entry, the one linking again gets none, and a panel
// deleted since it authenticated fails alone.
func TestRecordLinks_ABatchWithAPanelDeleted_RecordsTheOthersWithTheirEvents(t *testing.T) {
	l, _, p := fakeBusLink(t)
	ctx := context.Background()
	name := "Annex"
	if _, err := l.store.CreateLocation(ctx, models.SystemActor(p.AccountID, "test"), models.NewLocation{
		Settings: models.LocationSettings{Name: &name}, PanelSerial: "FB-0002", SecretHash: strings.Repeat("0", 64),
	}); err != nil {
		t.Fatal(err)
	}
	annex, err := l.store.PanelBySerial(ctx, "FB-0002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.store.MarkPanelConnected(ctx, annex.ID, "earlier-link", "node-stopped", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.store.MarkNodePanelsRelinking(ctx, "node-stopped"); err != nil {
		t.Fatal(err)
	}
	conn := func(p models.Panel, linkID string) *pendingLink {
		return &pendingLink{c: &deviceConn{panelID: p.ID, accountID: p.AccountID, locationID: p.LocationID, serial: p.Serial, linkID: linkID, began: time.Now().UTC()}}
	}
	gone := models.Panel{ID: "deleted-panel", AccountID: p.AccountID, LocationID: p.LocationID, Serial: "FB-GONE"}
	batch := []*pendingLink{conn(p, "link-hq"), conn(gone, "link-gone"), conn(annex, "link-annex")}
	offset, err := l.store.LastEventOffset(ctx, p.AccountID)
	if err != nil {
		t.Fatal(err)
	}

	l.recordLinks(ctx, batch)

	if batch[0].err != nil || batch[0].before.Connection != models.PanelDisconnected {
		t.Errorf("the panel never linked: (%+v, %v), want disconnected before", batch[0].before, batch[0].err)
	}
	if models.ErrorCode(batch[1].err) != models.CodeNotFound {
		t.Errorf("the deleted panel: %v, want not found", batch[1].err)
	}
	if batch[2].err != nil || batch[2].before != (models.PanelHolder{Connection: models.PanelConnected}) {
		t.Errorf("the panel linking again: (%+v, %v), want connected and held by no node before", batch[2].before, batch[2].err)
	}
	for _, b := range []*pendingLink{batch[0], batch[2]} {
		stored, err := l.store.PanelByID(ctx, b.c.panelID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.LinkID != b.c.linkID || stored.NodeID != "node-x" || stored.Connection != models.PanelConnected {
			t.Errorf("panel %s stored %s on %q through %q, want connected on node-x through %s", b.c.serial, stored.Connection, stored.NodeID, stored.LinkID, b.c.linkID)
		}
	}
	events, err := l.store.ListEvents(ctx, models.EventQuery{AccountID: p.AccountID, After: &offset, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Type != models.EventPanelConnected || events[0].LocationID == nil || *events[0].LocationID != p.LocationID {
		t.Fatalf("events written %+v, want one panel.connected for %s", events, p.Serial)
	}
}

// TestLink_ALinkThatCannotBeRecorded_IsClosedForThePanelToLinkAgain: a
// link the database does not name could never be reached by a tap, so it
// is closed with 1013 (try again later) rather than left open; the panel's
// next link is recorded as usual.
func TestLink_ALinkThatCannotBeRecorded_IsClosedForThePanelToLinkAgain(t *testing.T) {
	l, _, p := fakeBusLink(t)
	ctx := context.Background()
	// The panel's location was deleted between the panel's authentication
	// and the record of its link.
	unrecorded := p
	unrecorded.ID = models.NewID()
	sock := newFakeSocket()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Serve(ctx, unrecorded, sock)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the link the database could not record is still open")
	}
	if code := sock.code(); code != wsframe.CloseTryAgainLater {
		t.Fatalf("the link closed with %d, want %d (try again later)", code, wsframe.CloseTryAgainLater)
	}
	l.mu.Lock()
	held := len(l.conns)
	l.mu.Unlock()
	if held != 0 {
		t.Fatalf("the node still holds %d connections", held)
	}

	linkPanel(t, l, p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		stored, err := l.store.PanelByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Connection == models.PanelConnected && stored.NodeID == "node-x" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the panel's next link was not recorded: %s on %q", stored.Connection, stored.NodeID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
