package panel

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A check-in that reports nothing new still says the panel is alive, and
// the panels table shows when each panel was last heard from. Written one
// by one, a million panels checking in every half hour would cost the
// database hundreds of transactions a second for that alone; collected
// here, they cost one statement a second.

const (
	// lastSeenEvery is how often the times collected are written.
	lastSeenEvery = time.Second
	// lastSeenBatch is how many panels waiting make a flush start at once.
	lastSeenBatch = 1000
	// lastSeenTimeout bounds one flush.
	lastSeenTimeout = 5 * time.Second
)

// seenMarker records when panels were last heard from; *models.Store is
// one.
type seenMarker interface {
	MarkPanelsSeen(ctx context.Context, panelIDs []string, at time.Time) error
}

// lastSeen collects the times panels were heard from and writes them
// together from one goroutine per link. It holds at most one time per
// panel, the latest, so it stays as large as the number of panels waiting
// even while the database refuses the writes.
type lastSeen struct {
	store seenMarker
	log   *slog.Logger
	every time.Duration
	batch int

	mu      sync.Mutex
	waiting map[string]time.Time

	// full wakes the writer early when a batch's worth is waiting.
	full chan struct{}
	stop chan struct{}
	done chan struct{}
}

// startLastSeen starts the writer, which runs until close.
func startLastSeen(store seenMarker, log *slog.Logger, every time.Duration, batch int) *lastSeen {
	b := &lastSeen{
		store:   store,
		log:     log,
		every:   every,
		batch:   batch,
		waiting: map[string]time.Time{},
		full:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go b.run()
	return b
}

// mark notes that the panel was heard from at at; it is written at the
// next flush.
func (b *lastSeen) mark(panelID string, at time.Time) {
	b.mu.Lock()
	b.keepLatestLocked(panelID, at)
	waiting := len(b.waiting)
	b.mu.Unlock()
	if waiting >= b.batch {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

func (b *lastSeen) keepLatestLocked(panelID string, at time.Time) {
	if prev, ok := b.waiting[panelID]; !ok || at.After(prev) {
		b.waiting[panelID] = at
	}
}

func (b *lastSeen) run() {
	defer close(b.done)
	tick := time.NewTicker(b.every)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		case <-b.full:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lastSeenTimeout)
		b.flush(ctx)
		cancel()
	}
}

// flush writes every time waiting. Panels seen in the same second are
// written together at the start of that second, so that one statement
// covers nearly all of a flush and no panel is recorded as seen later
// than it was. What the database refuses waits for the next flush.
func (b *lastSeen) flush(ctx context.Context) {
	b.mu.Lock()
	taken := b.waiting
	b.waiting = make(map[string]time.Time, len(taken))
	b.mu.Unlock()
	if len(taken) == 0 {
		return
	}
	bySecond := map[time.Time][]string{}
	for id, at := range taken {
		second := at.Truncate(time.Second)
		bySecond[second] = append(bySecond[second], id)
	}
	var failed []string
	var lastErr error
	for at, ids := range bySecond {
		if err := b.store.MarkPanelsSeen(ctx, ids, at); err != nil {
			failed = append(failed, ids...)
			lastErr = err
		}
	}
	if lastErr == nil {
		return
	}
	b.mu.Lock()
	for _, id := range failed {
		b.keepLatestLocked(id, taken[id])
	}
	b.mu.Unlock()
	b.log.Warn("record when panels were last seen; trying again at the next flush", "panels", len(failed), "error", lastErr.Error())
}

// close stops the writer and writes what is still waiting, within a few
// seconds even when ctx has already ended, so that a node stopping cleanly
// leaves no panel's last check-in unrecorded.
func (b *lastSeen) close(ctx context.Context) {
	close(b.stop)
	<-b.done
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastSeenTimeout)
	defer cancel()
	b.flush(flushCtx)
}
