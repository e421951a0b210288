package realtime

import (
	"errors"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/panelsync/panelsync/wsframe"
)

// The write side of every connection is served by a few hub workers
// instead of a goroutine per connection: an idle connection holds no
// goroutine, no channel and no buffer, and a fan-out wakes a handful of
// workers rather than thousands of writers. Writes never wait: a client
// whose socket is full keeps the unsent remainder (so framing stays
// intact) and is tried again shortly, and one that stays blocked past the
// write timeout is closed.

// maxBatchBytes bounds one write of queued frames.
const maxBatchBytes = 64 << 10

// retryDelay is how long a client whose socket was full waits before its
// next attempt.
const retryDelay = 10 * time.Millisecond

// readyQueue is the list of clients with something to write. A client is
// on it at most once (its scheduled flag), so it is bounded by the number
// of connections.
type readyQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	clients []*Client
	stopped bool
}

func newReadyQueue() *readyQueue {
	q := &readyQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *readyQueue) push(c *Client) {
	q.mu.Lock()
	q.clients = append(q.clients, c)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for a client, or returns nil once stopped.
func (q *readyQueue) pop() *Client {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.clients) == 0 && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped {
		return nil
	}
	c := q.clients[0]
	q.clients[0] = nil
	q.clients = q.clients[1:]
	if len(q.clients) == 0 {
		q.clients = nil
	}
	return c
}

func (q *readyQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// writeWorker writes for whichever client is ready next.
func (h *Hub) writeWorker() {
	for {
		c := h.ready.pop()
		if c == nil {
			return
		}
		c.flush()
	}
}

// writeState is a connection's pending output, guarded by Client.wmu.
type writeState struct {
	queue [][]byte
	// tail is what a timed-out write left of its batch; it goes first.
	tail      []byte
	closeWith []byte
	// ping and pong are the control frames waiting to go out, at most one
	// of each: a second ping of ours would ask nothing the first does not,
	// and only the client's most recent ping needs an answer (RFC 6455
	// section 5.5.3), so a client that pings without reading holds one
	// pong here however fast it pings.
	ping bool
	pong []byte
	// closeQueued says the close frame has been put in the byte stream
	// (in the tail, if a write was cut short).
	closeQueued bool
	scheduled   bool
	done        bool
	// blockedSince is when writes started timing out; zero while they
	// succeed.
	blockedSince time.Time
}

// enqueue adds a frame and makes sure a worker will write it. It reports
// false when the queue is full: the client is too slow.
func (c *Client) enqueue(frame []byte, limit int) bool {
	c.wmu.Lock()
	if c.ws.done || c.ws.closeWith != nil {
		c.wmu.Unlock()
		return true
	}
	if limit > 0 && len(c.ws.queue) >= limit {
		c.wmu.Unlock()
		return false
	}
	c.ws.queue = append(c.ws.queue, frame)
	c.scheduleLocked()
	c.wmu.Unlock()
	return true
}

// sendPing asks the client for a pong.
func (c *Client) sendPing() {
	c.wmu.Lock()
	if !c.ws.done && c.ws.closeWith == nil {
		c.ws.ping = true
		c.scheduleLocked()
	}
	c.wmu.Unlock()
}

// sendPong answers the client's ping, in place of any answer to an
// earlier ping that has not gone out yet.
func (c *Client) sendPong(appData []byte) {
	c.wmu.Lock()
	if !c.ws.done && c.ws.closeWith == nil {
		c.ws.pong = wsframe.PongFrame(appData)
		c.scheduleLocked()
	}
	c.wmu.Unlock()
}

// pendingBytes reports how many bytes wait to be written: queued frames,
// control frames and what a cut-short write left.
func (c *Client) pendingBytes() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(c.ws.tail) + len(c.ws.pong)
	if c.ws.ping {
		n += len(ws.CompiledPing)
	}
	for _, f := range c.ws.queue {
		n += len(f)
	}
	return n
}

// queueLen reports how many frames wait.
func (c *Client) queueLen() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.ws.queue)
}

func (c *Client) scheduleLocked() {
	if !c.ws.scheduled && !c.ws.done {
		c.ws.scheduled = true
		c.hub.ready.push(c)
	}
}

// startClose queues the close frame; it goes out after any partly written
// frame and before anything still queued.
func (c *Client) startClose(code int, text string) {
	c.wmu.Lock()
	if c.ws.closeWith == nil && !c.ws.done {
		c.ws.closeWith = wsframe.CloseFrame(code, text)
		c.scheduleLocked()
	}
	c.wmu.Unlock()
}

// flush writes what is pending, once, and reschedules the client if more
// remains.
func (c *Client) flush() {
	c.wmu.Lock()
	if c.ws.done {
		c.wmu.Unlock()
		return
	}
	closing := c.ws.closeWith != nil
	batch := c.ws.tail
	switch {
	case closing && !c.ws.closeQueued:
		// The close frame follows whatever frame is partly written, and
		// takes the place of everything still queued.
		batch = append(append([]byte(nil), batch...), c.ws.closeWith...)
		c.ws.closeQueued = true
		c.ws.queue, c.ws.ping, c.ws.pong = nil, false, nil
	case closing:
		// What is left of the close frame is already in the tail.
	case len(c.ws.queue) == 1 && batch == nil && !c.ws.ping && c.ws.pong == nil:
		batch = c.ws.queue[0]
		c.ws.queue = nil
	default:
		// Control frames go ahead of queued frames: they are small, and a
		// pong kept behind a backlog could miss the client's deadline.
		// They wait while a cut-short write is finished, so that a socket
		// that stays full holds the one pending pong, not one per retry.
		var control []byte
		if batch == nil {
			if c.ws.ping {
				// Copied, never appended to: the compiled ping is shared.
				control = append(control, ws.CompiledPing...)
			}
			control = append(control, c.ws.pong...)
			c.ws.ping, c.ws.pong = false, nil
		}
		if len(control) > 0 {
			batch = append(append(make([]byte, 0, len(batch)+len(control)+256), batch...), control...)
		}
		taken := 0
		for _, f := range c.ws.queue {
			if len(batch) > 0 && len(batch)+len(f) > maxBatchBytes {
				break
			}
			// The batch is copied before the first frame joins it, unless
			// the control frames did so: the tail and the frames may be
			// shared with other clients.
			if taken == 0 && len(control) == 0 {
				batch = append(make([]byte, 0, len(batch)+len(f)+256), batch...)
			}
			batch = append(batch, f...)
			taken++
		}
		c.ws.queue = c.ws.queue[taken:]
		if len(c.ws.queue) == 0 {
			c.ws.queue = nil
		}
	}
	c.ws.tail = nil
	c.wmu.Unlock()
	c.write(batch, closing)
}

// sendLive sends a live event's frame. When nothing waits before it, the
// fan-out worker writes it at once; otherwise it joins the queue.
func (c *Client) sendLive(frame []byte) {
	c.wmu.Lock()
	if c.ws.done || c.ws.closeWith != nil {
		c.wmu.Unlock()
		return
	}
	if c.ws.scheduled {
		if len(c.ws.queue) >= c.hub.cfg.SendQueue {
			c.wmu.Unlock()
			c.shutdown(CloseTooSlow, "too slow: resume with after")
			return
		}
		c.ws.queue = append(c.ws.queue, frame)
		c.wmu.Unlock()
		return
	}
	// Nothing queued, nothing partly written: this caller takes the
	// write side, as a worker's flush does.
	c.ws.scheduled = true
	c.wmu.Unlock()
	c.write(frame, false)
}

// write sends batch for the holder of the write side and settles what
// comes next: done, more to write, a retry once the socket drains, or the
// end of the connection.
func (c *Client) write(batch []byte, closing bool) {
	n, err := c.conn.TryWrite(batch)

	c.wmu.Lock()
	switch {
	case err == nil && closing:
		c.finishLocked()
	case err == nil:
		c.ws.blockedSince = time.Time{}
		c.ws.scheduled = false
		if len(c.ws.queue) > 0 || c.ws.closeWith != nil || c.ws.ping || c.ws.pong != nil {
			c.scheduleLocked()
		}
		c.wmu.Unlock()
	case errors.Is(err, wsframe.ErrWouldBlock):
		c.ws.tail = batch[n:]
		now := time.Now()
		if c.ws.blockedSince.IsZero() {
			c.ws.blockedSince = now
		}
		if now.Sub(c.ws.blockedSince) > c.hub.cfg.WriteTimeout {
			// Blocked for long, perhaps gone: give up on telling it why.
			c.finishLocked()
			c.shutdown(CloseTooSlow, "too slow: resume with after")
			return
		}
		c.wmu.Unlock()
		time.AfterFunc(retryDelay, func() {
			c.wmu.Lock()
			if !c.ws.done {
				c.hub.ready.push(c)
			}
			c.wmu.Unlock()
		})
	default:
		c.finishLocked()
		c.shutdown(CloseTooSlow, "write failed")
	}
}

// finishLocked ends the write side and closes the socket, which also ends
// the reader. It unlocks wmu.
func (c *Client) finishLocked() {
	c.ws.done = true
	c.ws.queue, c.ws.tail, c.ws.pong = nil, nil, nil
	c.wmu.Unlock()
	_ = c.conn.Close()
	close(c.writeDone)
}
