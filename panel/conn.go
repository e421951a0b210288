package panel

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// Socket is the part of a WebSocket connection the link uses.
type Socket interface {
	ReadMessage() (messageType int, p []byte, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetReadLimit(limit int64)
	SetPongHandler(h func(appData string) error)
	Close() error
}

// Close codes the link sends.
const (
	closeReplaced  = 4000
	closeRevoked   = 4003
	closeBadFrames = websocket.ClosePolicyViolation
)

// pendingCommand is a command waiting for, or holding, the panel.
type pendingCommand struct {
	id       string
	frame    []byte
	deadline time.Time
	reply    func(busReply)
	timer    *time.Timer
}

// deviceConn is one live panel connection on this node. Commands are sent
// one at a time: a panel works through them in order, and a second one
// waits in a short queue instead of racing the first.
type deviceConn struct {
	linkID string
	// began is when the connection was accepted; of two connections of
	// one panel, the later one holds it.
	began      time.Time
	panelID    string
	accountID  string
	locationID string
	serial     string
	sock       Socket
	// statusDigest is statusDigest of the status stored for the panel, or
	// 0 while not known. Only the read loop, which handles check-ins and
	// panel events, uses it.
	statusDigest uint64

	// out carries frames to the writer goroutine. It is bounded; a panel
	// that stops reading is closed rather than buffered without end.
	out chan outbound
	// closing is closed once, when the connection starts to shut down.
	closing   chan struct{}
	closeOnce sync.Once
	closeCode int
	closeText string

	mu       sync.Mutex
	inflight *pendingCommand
	queue    []*pendingCommand
	maxQueue int
	seq      uint64
	closed   bool
}

type outbound struct {
	data    []byte
	control int
}

// olderThan reports whether the connection that sent a takeover began
// after c, so that c must give way. Ties go to the larger link id, so two
// nodes never both give way or both stay.
func (c *deviceConn) olderThan(takeover busControl) bool {
	if takeover.ConnectedAt.IsZero() {
		return true
	}
	if takeover.ConnectedAt.Equal(c.began) {
		return takeover.LinkID > c.linkID
	}
	return takeover.ConnectedAt.After(c.began)
}

func newDeviceConn(linkID string, p panelIdentity, sock Socket, maxQueue int) *deviceConn {
	return &deviceConn{
		linkID:     linkID,
		began:      time.Now().UTC(),
		panelID:    p.PanelID,
		accountID:  p.AccountID,
		locationID: p.LocationID,
		serial:     p.Serial,
		sock:       sock,
		out:        make(chan outbound, 32),
		closing:    make(chan struct{}),
		maxQueue:   maxQueue,
	}
}

// enqueueFrame hands a frame to the writer. It never blocks: when the
// queue is full the panel is not keeping up and the connection closes.
func (c *deviceConn) enqueueFrame(data []byte) bool {
	select {
	case <-c.closing:
		return false
	default:
	}
	select {
	case c.out <- outbound{data: data}:
		return true
	default:
		c.shutdown(websocket.CloseTryAgainLater, "panel is not reading its frames")
		return false
	}
}

// shutdown starts closing the connection with a close code; the writer
// sends the close frame and the reader then ends.
func (c *deviceConn) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.closing)
	})
}

// submit queues a command for the panel and calls reply exactly once with
// the answer, a timeout, or a failure.
func (c *deviceConn) submit(name string, args json.RawMessage, timeout time.Duration, reply func(busReply)) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		reply(failReply(FailDisconnected, "the panel disconnected"))
		return
	}
	if len(c.queue) >= c.maxQueue {
		c.mu.Unlock()
		reply(failReply(FailBusy, "the panel has too many commands waiting"))
		return
	}
	c.seq++
	id := c.linkID[:8] + "-" + strconv.FormatUint(c.seq, 10)
	frame, _ := json.Marshal(Frame{Type: FrameCommand, ID: id, Name: name, Args: args})
	cmd := &pendingCommand{id: id, frame: frame, deadline: time.Now().Add(timeout), reply: reply}
	// The deadline runs from submission: time spent queued behind another
	// command counts, as it does for the caller waiting on it.
	cmd.timer = time.AfterFunc(timeout, func() { c.expire(cmd) })
	c.queue = append(c.queue, cmd)
	next := c.advanceLocked()
	c.mu.Unlock()
	c.send(next)
}

// advanceLocked moves the next queued command in flight when the panel is
// free, and returns it for sending outside the lock.
func (c *deviceConn) advanceLocked() *pendingCommand {
	if c.inflight != nil || len(c.queue) == 0 {
		return nil
	}
	c.inflight = c.queue[0]
	c.queue = c.queue[1:]
	return c.inflight
}

func (c *deviceConn) send(cmd *pendingCommand) {
	if cmd != nil && !c.enqueueFrame(cmd.frame) {
		c.finish(cmd.id, failReply(FailDisconnected, "the panel disconnected"))
	}
}

// expire answers a command whose time ran out, whether it was queued or in
// flight.
func (c *deviceConn) expire(cmd *pendingCommand) {
	c.mu.Lock()
	if c.inflight == cmd {
		c.mu.Unlock()
		c.finish(cmd.id, failReply(FailTimeout, "the panel did not answer in time"))
		return
	}
	for i, q := range c.queue {
		if q == cmd {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			c.mu.Unlock()
			cmd.reply(failReply(FailTimeout, "the panel did not answer in time"))
			return
		}
	}
	c.mu.Unlock()
}

// finish completes the in-flight command with id, if it is still the one
// in flight, and starts the next. It reports whether id was in flight; a
// late answer to a command that already timed out is dropped.
func (c *deviceConn) finish(id string, r busReply) bool {
	c.mu.Lock()
	cmd := c.inflight
	if cmd == nil || cmd.id != id {
		c.mu.Unlock()
		return false
	}
	cmd.timer.Stop()
	c.inflight = nil
	next := c.advanceLocked()
	c.mu.Unlock()
	cmd.reply(r)
	c.send(next)
	return true
}

// failAll answers every command the connection still holds, once it has
// closed.
func (c *deviceConn) failAll() {
	c.mu.Lock()
	c.closed = true
	pending := c.queue
	if c.inflight != nil {
		pending = append([]*pendingCommand{c.inflight}, pending...)
	}
	c.inflight, c.queue = nil, nil
	c.mu.Unlock()
	for _, cmd := range pending {
		cmd.timer.Stop()
		cmd.reply(failReply(FailDisconnected, "the panel disconnected before answering"))
	}
}

func failReply(code, message string) busReply {
	return busReply{Error: &CommandError{Code: code, Message: message}}
}
