package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/wsframe"
)

// Viewer is who a realtime connection speaks for.
type Viewer struct {
	// LoginID and SessionID name a signed-in person; APIKeyID an
	// integrator's key. Ending the session or revoking the key closes
	// the connection.
	LoginID   string
	SessionID string
	APIKeyID  string
	AccountID string
	Role      models.Role
	// ExpiresAt is when the credential that opened the connection runs
	// out; the connection is closed then. Zero for a key without expiry.
	ExpiresAt time.Time
}

// Client is one realtime connection.
type Client struct {
	hub    *Hub
	conn   *wsframe.Conn
	viewer Viewer

	// closing is closed once, when the connection starts to shut down;
	// writeDone when its write side has finished and the socket is closed.
	closing   chan struct{}
	closeOnce sync.Once
	writeDone chan struct{}

	wmu sync.Mutex
	ws  writeState

	mu         sync.Mutex
	stream     *stream
	subscribed bool
	all        bool
	locations  map[string]bool
	// cursor is the last offset this client has been sent or has had
	// filtered out: everything up to it is settled.
	cursor int64
	bad    int
	// accessUntil is when the connection's access to the account it
	// watches ends, a staff grant's expiry; zero when it does not end on
	// its own. accessEnd closes the connection at that moment; it is
	// stopped when the connection ends, so an idle watcher costs a timer
	// and no goroutine.
	accessUntil time.Time
	accessEnd   *time.Timer
}

// closeAccessExpired is the reason given to a watcher whose staff grant
// ran out.
const closeAccessExpired = "access to the account has expired"

// watchUntilLocked ends the connection's access at until, when it is set.
// A moment already past closes the connection at once. c.mu is held.
func (c *Client) watchUntilLocked(until time.Time) {
	if until.IsZero() {
		return
	}
	c.accessUntil = until
	c.accessEnd = time.AfterFunc(time.Until(until), func() {
		c.shutdown(CloseForbidden, closeAccessExpired)
	})
}

// stopAccessTimer releases the access timer of a connection that ended.
func (c *Client) stopAccessTimer() {
	c.mu.Lock()
	if c.accessEnd != nil {
		c.accessEnd.Stop()
	}
	c.mu.Unlock()
}

// accessEndedLocked reports whether access ran out by at. The timer closes
// the connection at that moment, but it may fire a little late on a busy
// machine, so delivery checks too: nothing that happened after access
// ended is ever sent. c.mu is held.
func (c *Client) accessEndedLocked(at time.Time) bool {
	return !c.accessUntil.IsZero() && !at.Before(c.accessUntil)
}

func (c *Client) wants(e Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all {
		return true
	}
	return e.LocationID != nil && c.locations[*e.LocationID]
}

func (c *Client) setCursor(o int64) {
	c.mu.Lock()
	if o > c.cursor {
		c.cursor = o
	}
	c.mu.Unlock()
}

// deliverLive sends a pass's events that the client has not had and has
// asked for, in one write; its cursor moves past all of them.
func (c *Client) deliverLive(p *pass) {
	wanted, single := 0, -1
	var some [][]byte
	c.mu.Lock()
	if c.accessEndedLocked(p.at) {
		c.mu.Unlock()
		c.shutdown(CloseForbidden, closeAccessExpired)
		return
	}
	for i := range p.events {
		e := &p.events[i]
		if e.Offset <= c.cursor {
			continue
		}
		c.cursor = e.Offset
		if !c.all && (e.LocationID == nil || !c.locations[*e.LocationID]) {
			continue
		}
		wanted++
		if single < 0 {
			single = i
		}
		if !c.all {
			some = append(some, p.frames[i])
		}
	}
	c.mu.Unlock()
	switch {
	case wanted == 0:
	case wanted == 1:
		c.sendLive(p.frames[single])
	case wanted == len(p.events):
		c.sendLive(p.all())
	case some == nil:
		// The whole account, but for events it had already: the rest of
		// the pass from the first it had not.
		c.sendLive(bytes.Join(p.frames[single:], nil))
	default:
		c.sendLive(bytes.Join(some, nil))
	}
	c.hub.cfg.Metrics.deliveredLive(wanted)
}

// queue sends a frame. It never blocks: when the queue is full the client
// is too slow.
func (c *Client) queue(frame []byte) {
	if !c.enqueue(frame, c.hub.cfg.SendQueue) {
		c.shutdown(CloseTooSlow, "too slow: resume with after")
	}
}

// queueReplay sends a replayed event, waiting a while for room: a replay
// may be long, and the reader may need a moment.
func (c *Client) queueReplay(frame []byte) bool {
	deadline := time.Now().Add(c.hub.cfg.ReplayWait)
	for !c.enqueue(frame, c.hub.cfg.SendQueue) {
		if time.Now().After(deadline) {
			c.shutdown(CloseTooSlow, "too slow: resume with after")
			return false
		}
		select {
		case <-c.closing:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.hub.cfg.Metrics.deliveredReplay()
	return true
}

// shutdown starts closing the connection with a close code, once: the
// close frame goes out, then the socket closes and the reader ends.
func (c *Client) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.hub.cfg.Metrics.closed(code)
		close(c.closing)
		c.startClose(code, text)
	})
}

// serve runs the connection until it closes.
func (c *Client) serve(ctx context.Context) {
	defer c.stopAccessTimer()
	if !c.viewer.ExpiresAt.IsZero() {
		expiry := time.AfterFunc(time.Until(c.viewer.ExpiresAt), func() {
			c.shutdown(CloseTokenExpired, "token expired: reconnect with a fresh token")
		})
		defer expiry.Stop()
	}
	c.readLoop(ctx)
	c.shutdown(wsframe.CloseNormal, "")
	// The writers send the close frame and close the socket; a socket they
	// cannot reach in time is closed here.
	select {
	case <-c.writeDone:
	case <-time.After(2 * time.Second):
		c.wmu.Lock()
		if !c.ws.done {
			c.finishLocked()
		} else {
			c.wmu.Unlock()
		}
	}
	c.mu.Lock()
	st := c.stream
	c.mu.Unlock()
	if st != nil {
		select {
		case st.leave <- c:
		case <-c.hub.stop:
		}
	}
}

func (c *Client) readLoop(ctx context.Context) {
	c.conn.OnPong(func() {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.hub.cfg.PongWait))
	})
	// Replies go through the hub's writers, the socket's only writers.
	c.conn.OnPing(func(data []byte) {
		c.sendPong(data)
	})
	c.conn.OnClose(func(code int) {
		if code == wsframe.CloseNoStatus {
			code = wsframe.CloseNormal
		}
		c.shutdown(code, "")
	})
	for {
		// A replay runs on this goroutine; the deadline starts again once
		// it is done.
		_ = c.conn.SetReadDeadline(time.Now().Add(c.hub.cfg.PongWait))
		text, data, err := c.conn.ReadMessage()
		if err != nil {
			var pe *wsframe.ProtocolError
			if errors.As(err, &pe) {
				c.shutdown(pe.Code, pe.Text)
			}
			return
		}
		if !text {
			c.refuse("invalid_frame", "frames must be JSON text")
			continue
		}
		var f clientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.refuse("invalid_frame", "frame is not valid JSON")
			continue
		}
		switch f.Op {
		case opPing:
			c.queue(encodeFrame(serverFrame{Type: "pong"}))
		case opSubscribe:
			// Subscribing queries the database, which needs a deep stack;
			// it runs on a goroutine of its own so the connection's
			// long-lived reader keeps a small one.
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.subscribe(ctx, f)
			}()
			<-done
		case opUnsubscribe:
			c.unsubscribe(f)
		case "":
			c.refuse("invalid_frame", "frame needs an op: subscribe, unsubscribe or ping")
		default:
			c.refuse("unknown_op", fmt.Sprintf("unknown op %q: use subscribe, unsubscribe or ping", truncate(f.Op, 32)))
		}
		select {
		case <-c.closing:
			return
		default:
		}
	}
}

// refuse answers a bad frame with an error frame; a client that keeps
// sending them is closed.
func (c *Client) refuse(code, message string) {
	c.mu.Lock()
	c.bad++
	bad := c.bad
	c.mu.Unlock()
	c.queue(errorFrame(code, message))
	if bad >= c.hub.cfg.MaxBadFrames {
		c.shutdown(wsframe.ClosePolicyViolation, "too many invalid frames")
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *Client) subscribe(ctx context.Context, f clientFrame) {
	if len(f.LocationIDs) > maxSubscribeLocations {
		c.refuse("invalid_request", fmt.Sprintf("at most %d location_ids per subscribe", maxSubscribeLocations))
		return
	}
	if f.After != nil && *f.After < 0 {
		c.refuse("invalid_request", "after must be a non-negative offset")
		return
	}
	c.mu.Lock()
	first := !c.subscribed
	current := c.viewer.AccountID
	if c.stream != nil {
		current = c.stream.accountID
	}
	c.mu.Unlock()

	account := current
	if f.AccountID != "" {
		account = f.AccountID
	}
	if !first && account != current {
		c.refuse("invalid_request", "a connection watches one account; open another connection for another account")
		return
	}
	var until time.Time
	if first && account != c.viewer.AccountID {
		ok, accessUntil, err := c.hub.canWatch(ctx, c.viewer, account)
		if err != nil {
			c.queue(errorFrame("internal", "could not check access; try again"))
			return
		}
		if !ok {
			c.queue(errorFrame("forbidden", "you may not watch that account"))
			return
		}
		until = accessUntil
	}
	if len(f.LocationIDs) > 0 {
		found, err := c.hub.store.LocationIDsInAccount(ctx, account, f.LocationIDs)
		if err != nil {
			c.queue(errorFrame("internal", "could not check the locations; try again"))
			return
		}
		for _, id := range f.LocationIDs {
			if !found[id] {
				// The same answer for another account's location and for
				// one that does not exist: neither is revealed.
				c.queue(errorFrame("forbidden", fmt.Sprintf("location %s is not one you may watch", truncate(id, 64))))
				return
			}
		}
	}
	if !first && f.After != nil {
		c.refuse("invalid_request", "after is only accepted on a connection's first subscribe; reconnect to resume")
		return
	}

	c.mu.Lock()
	if len(f.LocationIDs) == 0 {
		c.all = true
	} else {
		if c.locations == nil {
			c.locations = map[string]bool{}
		}
		for _, id := range f.LocationIDs {
			c.locations[id] = true
		}
	}
	cursor := c.cursor
	c.mu.Unlock()
	if !first {
		c.queue(encodeFrame(serverFrame{Type: "subscribed", After: &cursor, LocationIDs: f.LocationIDs}))
		return
	}

	if f.After != nil {
		if expired, newest, err := c.hub.resumeExpired(ctx, account, *f.After); err != nil {
			c.queue(errorFrame("internal", "could not check the resume point; try again"))
			c.resetFilter()
			return
		} else if expired {
			c.resetFilter()
			c.queue(encodeFrame(serverFrame{Type: "error", Code: "resume_expired", Offset: &newest,
				Message: "events after that offset are no longer kept; reload and subscribe from the offset given"}))
			return
		}
	}
	st, err := c.hub.acquire(ctx, account)
	if err != nil {
		c.resetFilter()
		c.queue(errorFrame("internal", "could not subscribe; try again"))
		return
	}
	c.mu.Lock()
	c.stream = st
	c.subscribed = true
	// Armed only once the subscription stands; a grant that ran out while
	// it was set up closes the connection at once.
	c.watchUntilLocked(until)
	c.mu.Unlock()

	if f.After == nil {
		reply := make(chan joinReply, 1)
		select {
		case st.join <- joinRequest{client: c, cursor: -1, reply: reply}:
		case <-c.hub.stop:
			return
		}
		r := <-reply
		c.queue(encodeFrame(serverFrame{Type: "subscribed", After: &r.target, LocationIDs: f.LocationIDs}))
		return
	}
	after := *f.After
	c.setCursor(after)
	c.queue(encodeFrame(serverFrame{Type: "subscribed", After: &after, LocationIDs: f.LocationIDs}))
	c.replay(ctx, st, after)
}

func (c *Client) resetFilter() {
	c.mu.Lock()
	c.all = false
	c.locations = nil
	c.mu.Unlock()
}

// replay sends the events after the client's offset from the database,
// then joins live delivery at exactly the offset it reached. The stream
// only lets it join when nothing lies between, so each offset arrives
// once, in order, even while events keep committing.
func (c *Client) replay(ctx context.Context, st *stream, cursor int64) {
	for {
		reply := make(chan joinReply, 1)
		select {
		case st.join <- joinRequest{client: c, cursor: cursor, reply: reply}:
		case <-c.closing:
			return
		case <-c.hub.stop:
			return
		}
		r := <-reply
		if r.joined {
			return
		}
		for cursor < r.target {
			after := cursor
			rows, err := c.hub.store.ListEvents(ctx, models.EventQuery{AccountID: st.accountID, After: &after, Limit: c.hub.cfg.ReplayPage})
			if err != nil {
				c.hub.log.Warn("replay events", "account_id", st.accountID, "login_id", c.viewer.LoginID, "api_key_id", c.viewer.APIKeyID, "error", err.Error())
				c.shutdown(wsframe.CloseTryAgainLater, "replay failed: resume with after")
				return
			}
			if len(rows) == 0 {
				cursor = r.target
				break
			}
			c.mu.Lock()
			ended := c.accessEndedLocked(time.Now())
			c.mu.Unlock()
			if ended {
				c.shutdown(CloseForbidden, closeAccessExpired)
				return
			}
			for _, row := range rows {
				if row.Offset > r.target {
					break
				}
				e := NewEvent(row)
				if c.wants(e) && !c.queueReplay(eventFrame(e)) {
					return
				}
				cursor = row.Offset
				c.setCursor(cursor)
			}
		}
	}
}

func (c *Client) unsubscribe(f clientFrame) {
	c.mu.Lock()
	if len(f.LocationIDs) == 0 {
		c.all = false
		c.locations = nil
		c.mu.Unlock()
		c.queue(encodeFrame(serverFrame{Type: "unsubscribed"}))
		return
	}
	if c.all {
		c.mu.Unlock()
		c.refuse("invalid_request", "the whole account is subscribed: unsubscribe with no location_ids to stop")
		return
	}
	for _, id := range f.LocationIDs {
		delete(c.locations, id)
	}
	c.mu.Unlock()
	c.queue(encodeFrame(serverFrame{Type: "unsubscribed", LocationIDs: f.LocationIDs}))
}
