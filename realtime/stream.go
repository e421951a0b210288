package realtime

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

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

	// refs counts the clients using the stream; the hub's mutex guards it.
	refs int

	sub *nats.Subscription
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
		in:        make(chan Event, 1024),
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
	sub, err := s.hub.nc.Subscribe(EventSubject(s.accountID), func(m *nats.Msg) {
		var e Event
		if json.Unmarshal(m.Data, &e) != nil {
			return
		}
		select {
		case s.in <- e:
		case <-s.hub.stop:
		}
	})
	if err != nil {
		return err
	}
	if err := s.hub.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	last, err := s.hub.store.LastEventOffset(ctx, s.accountID)
	if err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	s.sub = sub
	s.delivered = last
	return nil
}

func (s *stream) run() {
	defer func() {
		_ = s.sub.Unsubscribe()
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
		case req := <-s.join:
			if req.cursor < 0 || req.cursor >= s.delivered {
				s.live[req.client] = struct{}{}
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
			if s.hub.release(s) {
				return
			}
		case <-s.gapFill:
			s.fillGap()
		case <-heal.C:
			// A publish lost on the bus leaves a gap that no later event
			// reveals; compare with the log now and then.
			if len(s.live) > 0 {
				s.fillGap()
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

// deliver fans one in-order event out to the live clients that want it.
// The stream's goroutine writes to each client whose socket is free
// itself: a write that does not wait costs less than handing it to
// another goroutine, and one goroutine writing keeps a core for everything
// else (spreading one event over several writers measured slower).
func (s *stream) deliver(e Event) {
	s.delivered = e.Offset
	if len(s.live) == 0 {
		return
	}
	frame := eventFrame(e)
	for c := range s.live {
		c.deliverLive(&e, frame)
	}
}
