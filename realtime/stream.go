package realtime

import (
	"bytes"
	"context"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
)

// stream delivers one account's events to this node's clients of that
// account, in offset order, each once. One goroutine owns its state; the
// bus, clients and timers talk to it over channels.
type stream struct {
	hub       *Hub
	accountID string

	in      chan Event
	join    chan joinRequest
	leave   chan *Client
	gapFill chan struct{}

	// Owned by run.
	delivered int64
	pending   map[int64]Event
	live      map[*Client]struct{}
	gapTimer  *time.Timer
	// batch holds the events delivered in order but not yet written to
	// the clients; flush writes them, in one pass.
	batch []Event
	// clients lists the live clients for flush; nil after a change.
	clients []*Client

	// refs counts the clients using the stream; the hub's mutex guards it.
	refs int

	unsubscribe func()
}

// joinRequest asks to move a client to live delivery once it has caught
// up to the stream.
type joinRequest struct {
	client *Client
	// cursor is the last offset the client has been sent; -1 asks to
	// join at whatever the stream has delivered (live only).
	cursor int64
	reply  chan joinReply
}

type joinReply struct {
	joined bool
	// target is the offset to catch up to before asking again.
	target int64
}

func newStream(h *Hub, accountID string) *stream {
	return &stream{
		hub:       h,
		accountID: accountID,
		in:        make(chan Event, h.cfg.StreamQueue),
		join:      make(chan joinRequest),
		leave:     make(chan *Client),
		gapFill:   make(chan struct{}, 1),
		pending:   map[int64]Event{},
		live:      map[*Client]struct{}{},
	}
}

// start subscribes to the account's events and then reads where the log
// stands, so nothing published in between is missed (anything at or below
// the starting point is dropped as already delivered).
func (s *stream) start(ctx context.Context) error {
	unsubscribe, err := s.hub.bus.SubscribeEvents(s.accountID, s.receive)
	if err != nil {
		return err
	}
	last, err := s.hub.store.LastEventOffset(ctx, s.accountID)
	if err != nil {
		unsubscribe()
		return err
	}
	s.unsubscribe = unsubscribe
	s.delivered = last
	return nil
}

// receive takes an event from the bus. It never waits: for an event
// committed on this node it runs on the committing goroutine. An event
// that does not fit the queue is dropped and the stream told to read the
// Event Log, which already holds it, so it still goes out once and in
// order.
func (s *stream) receive(m bus.Event) {
	e, ok := decodeEvent(m)
	if !ok {
		return
	}
	select {
	case s.in <- e:
	default:
		select {
		case s.gapFill <- struct{}{}:
		default:
		}
	}
}

func (s *stream) run() {
	defer func() {
		s.unsubscribe()
		if s.gapTimer != nil {
			s.gapTimer.Stop()
		}
	}()
	heal := time.NewTicker(s.hub.cfg.HealInterval)
	defer heal.Stop()
	for {
		select {
		case <-s.hub.stop:
			return
		case e := <-s.in:
			s.accept(e)
			// Events that arrived while the last pass was writing go out
			// together: one write per client carries them all, so a
			// stream that falls behind catches up instead of falling
			// further behind.
		drain:
			for range maxEventsPerPass - 1 {
				select {
				case e := <-s.in:
					s.accept(e)
				default:
					break drain
				}
			}
			s.flush()
		case req := <-s.join:
			if req.cursor < 0 || req.cursor >= s.delivered {
				s.live[req.client] = struct{}{}
				s.clients = nil
				if req.cursor < 0 {
					req.cursor = s.delivered
				}
				req.client.setCursor(req.cursor)
				req.reply <- joinReply{joined: true, target: req.cursor}
				continue
			}
			req.reply <- joinReply{target: s.delivered}
		case c := <-s.leave:
			delete(s.live, c)
			s.clients = nil
			if s.hub.release(s) {
				return
			}
		case <-s.gapFill:
			s.fillGap()
			s.flush()
		case <-heal.C:
			// A publish lost on the bus leaves a gap that no later event
			// reveals; compare with the log now and then.
			if len(s.live) > 0 {
				s.fillGap()
				s.flush()
			}
		}
	}
}

// accept takes an event from the bus: in order it is delivered, early it
// waits briefly for the ones before it, late it is a duplicate.
func (s *stream) accept(e Event) {
	switch {
	case e.Offset <= s.delivered:
		return
	case e.Offset == s.delivered+1:
		s.deliver(e)
		s.drainPending()
	default:
		s.pending[e.Offset] = e
		if s.gapTimer == nil {
			s.gapTimer = time.AfterFunc(s.hub.cfg.GapWait, func() {
				select {
				case s.gapFill <- struct{}{}:
				default:
				}
			})
		}
	}
}

func (s *stream) drainPending() {
	for {
		e, ok := s.pending[s.delivered+1]
		if !ok {
			break
		}
		delete(s.pending, e.Offset)
		s.deliver(e)
	}
	if len(s.pending) == 0 && s.gapTimer != nil {
		s.gapTimer.Stop()
		s.gapTimer = nil
	}
}

// fillGap reads from the database what the bus did not bring in order.
// Events are published after commit and offsets follow commit order, so
// everything before an event that arrived is already in the database.
func (s *stream) fillGap() {
	if s.gapTimer != nil {
		s.gapTimer.Stop()
		s.gapTimer = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		after := s.delivered
		rows, err := s.hub.store.ListEvents(ctx, models.EventQuery{AccountID: s.accountID, After: &after, Limit: 500})
		if err != nil {
			s.hub.log.Warn("fill event gap", "account_id", s.accountID, "error", err.Error())
			break
		}
		for _, r := range rows {
			if r.Offset != s.delivered+1 {
				break
			}
			s.deliver(NewEvent(r))
			delete(s.pending, r.Offset)
		}
		if len(rows) < 500 {
			break
		}
	}
	// Whatever is still pending sits beyond what the database holds;
	// keep only what follows on.
	offsets := make([]int64, 0, len(s.pending))
	for o := range s.pending {
		offsets = append(offsets, o)
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
	for _, o := range offsets {
		if o <= s.delivered {
			delete(s.pending, o)
		}
	}
	s.drainPending()
}

// maxEventsPerPass bounds the events one pass writes to each client.
const maxEventsPerPass = 256

// deliver takes the next in-order event for the live clients; flush
// writes it. Every path that delivers flushes before the stream handles
// anything else, so a client joining never finds an event counted as
// delivered that it was not sent.
func (s *stream) deliver(e Event) {
	s.delivered = e.Offset
	if len(s.live) > 0 {
		s.batch = append(s.batch, e)
	}
}

// flush writes the delivered events to the live clients that want them.
// Writes go straight to each client whose socket is free, without a
// hand-off per client: a write that does not wait costs less than giving
// it to another goroutine. A large audience is split over as many writers
// as there are cores, this goroutine being one; the pass ends when all
// are done, so each client still gets its events in order. Each event's
// frame is encoded once for every client.
func (s *stream) flush() {
	if len(s.batch) == 0 {
		return
	}
	p := pass{events: s.batch, frames: make([][]byte, len(s.batch)), at: time.Now()}
	for i, e := range s.batch {
		p.frames[i] = eventFrame(e)
	}
	if len(p.frames) > 1 {
		p.joined = bytes.Join(p.frames, nil)
	}
	if s.clients == nil {
		s.clients = make([]*Client, 0, len(s.live))
		for c := range s.live {
			s.clients = append(s.clients, c)
		}
	}
	writers := max(1, min(runtime.GOMAXPROCS(0), len(s.clients)/s.hub.cfg.WriterShare))
	share := (len(s.clients) + writers - 1) / writers
	var wg sync.WaitGroup
	for w := 1; w < writers; w++ {
		part := s.clients[w*share : min((w+1)*share, len(s.clients))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				c.deliverLive(&p)
			}
		}()
	}
	for _, c := range s.clients[:min(share, len(s.clients))] {
		c.deliverLive(&p)
	}
	wg.Wait()
	s.hub.cfg.Metrics.passWritten(p.events)
	clear(s.batch)
	s.batch = s.batch[:0]
}

// pass is one flush's events and their frames. It is read by several
// writers at once and changed by none.
type pass struct {
	events []Event
	frames [][]byte
	// joined is every frame of the pass back to back, for the clients
	// that take them all; nil when the pass holds one event.
	joined []byte
	// at is when the pass began: a watcher whose access ended by then is
	// sent none of it, since its events may have happened after.
	at time.Time
}

func (p *pass) all() []byte {
	if p.joined == nil {
		return p.frames[0]
	}
	return p.joined
}
