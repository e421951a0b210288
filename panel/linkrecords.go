package panel

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/panelsync/panelsync/models"
)

// A fleet linking again after its node restarted brings thousands of
// links a second, and each must be recorded before its frames are read.
// One transaction per link bounds that by the commits the database makes
// a second (a few hundred on SQLite, where they queue for one writer), so
// the links waiting are recorded together, many to a transaction, by a
// few writers. A link arriving alone is recorded at once, alone.

const (
	// linkBatchMax is the most links one transaction records.
	linkBatchMax = 500
	// linkBatchTimeout bounds one batch's transaction.
	linkBatchTimeout = 10 * time.Second
)

// errLinkRecorderStopped is what a link still waiting to be recorded
// hears when the node stops.
var errLinkRecorderStopped = errors.New("the node is stopping")

// pendingLink is one link waiting to be recorded, and then what recording
// it found: how the panel's link stood before, or why it failed.
type pendingLink struct {
	c      *deviceConn
	before models.PanelHolder
	err    error
	done   chan struct{}
}

// linkRecorder collects the links waiting to be recorded and records them
// in batches on its writers.
type linkRecorder struct {
	record func(ctx context.Context, batch []*pendingLink)

	mu      sync.Mutex
	waiting []*pendingLink
	stopped bool

	// wake tells a writer that links are waiting.
	wake    chan struct{}
	stop    chan struct{}
	writers sync.WaitGroup
}

// startLinkRecorder starts writers goroutines, each of which hands record
// one batch at a time, until close.
func startLinkRecorder(writers int, record func(ctx context.Context, batch []*pendingLink)) *linkRecorder {
	r := &linkRecorder{
		record: record,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	r.writers.Add(writers)
	for range writers {
		go r.run()
	}
	return r
}

// recordLink records c's new link and returns how the panel's link stood
// before.
func (r *linkRecorder) recordLink(c *deviceConn) (models.PanelHolder, error) {
	p := &pendingLink{c: c, done: make(chan struct{})}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return models.PanelHolder{}, errLinkRecorderStopped
	}
	r.waiting = append(r.waiting, p)
	r.mu.Unlock()
	r.signal()
	<-p.done
	return p.before, p.err
}

func (r *linkRecorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *linkRecorder) run() {
	defer r.writers.Done()
	for {
		// A node that stops records no more batches: close fails the
		// links still waiting, rather than wait for the database.
		select {
		case <-r.stop:
			return
		default:
		}
		batch := r.take()
		if batch == nil {
			select {
			case <-r.stop:
				return
			case <-r.wake:
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), linkBatchTimeout)
		r.record(ctx, batch)
		cancel()
		for _, p := range batch {
			close(p.done)
		}
	}
}

// take removes up to linkBatchMax waiting links, each of a different
// panel, and returns them in the order they arrived. A panel that linked
// twice in quick succession has its later link left for the next batch,
// so that it is recorded after the earlier one. When links are left
// waiting, another writer is woken for them.
func (r *linkRecorder) take() []*pendingLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) == 0 {
		return nil
	}
	batch := make([]*pendingLink, 0, min(len(r.waiting), linkBatchMax))
	panels := make(map[string]bool, cap(batch))
	left := r.waiting[:0]
	for _, p := range r.waiting {
		if len(batch) < linkBatchMax && !panels[p.c.panelID] {
			panels[p.c.panelID] = true
			batch = append(batch, p)
		} else {
			left = append(left, p)
		}
	}
	clear(r.waiting[len(left):])
	r.waiting = left
	if len(left) > 0 {
		r.signal()
	}
	return batch
}

// close stops the writers once each has finished its batch, and fails the
// links still waiting. Only its first call does anything.
func (r *linkRecorder) close() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	r.mu.Unlock()
	close(r.stop)
	r.writers.Wait()
	r.mu.Lock()
	left := r.waiting
	r.waiting = nil
	r.mu.Unlock()
	for _, p := range left {
		p.err = errLinkRecorderStopped
		close(p.done)
	}
}

// recordLinks records a batch of new links, with a panel.connected entry
// for each panel that was not connected, in one transaction. When that
// fails the links are recorded one by one, so that one link the database
// refuses does not fail the others.
func (l *Link) recordLinks(ctx context.Context, batch []*pendingLink) {
	err := l.recordLinksTogether(ctx, batch)
	switch {
	case err == nil:
	case len(batch) == 1:
		batch[0].err = err
	default:
		for _, p := range batch {
			if err := l.recordLinksTogether(ctx, []*pendingLink{p}); err != nil {
				p.err = err
			}
		}
	}
}

func (l *Link) recordLinksTogether(ctx context.Context, batch []*pendingLink) error {
	links := make([]models.PanelLink, len(batch))
	for i, p := range batch {
		links[i] = models.PanelLink{PanelID: p.c.panelID, LinkID: p.c.linkID, At: p.c.began}
	}
	var before []models.PanelHolder
	err := l.store.Tx(ctx, func(ctx context.Context) error {
		var err error
		before, err = l.store.MarkPanelsConnected(ctx, l.cfg.NodeID, links)
		if err != nil {
			return err
		}
		var events []models.NewEvent
		for i, p := range batch {
			if b := before[i]; b.Connection == "" || b.Connection == models.PanelConnected {
				continue
			}
			events = append(events, models.NewEvent{
				AccountID: p.c.accountID, LocationID: p.c.locationID, Type: models.EventPanelConnected,
				Severity: models.SeverityInfo, Message: "Panel connected", OccurredAt: p.c.began,
				Data: map[string]any{"serial": p.c.serial},
			})
		}
		_, err = l.events.Append(ctx, events...)
		return err
	})
	if err != nil {
		return err
	}
	for i, p := range batch {
		p.before = before[i]
		if before[i].Connection == "" {
			p.err = models.NotFound("panel")
		}
	}
	return nil
}

// linkWriters is how many batches of links are recorded at once: one where
// the database commits one writer at a time, a few where it commits them
// in parallel.
func linkWriters(store *models.Store) int {
	if store.WritesInParallel() {
		return 4
	}
	return 1
}
