package panel

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/panelsync/panelsync/wsframe"
)

// Socket is the part of a WebSocket connection the link uses; a
// *wsframe.Conn is one. One goroutine reads it; frames are written whole,
// by one writer at a time.
type Socket interface {
	// ReadMessage returns the next data message, handing control frames
	// in between to the OnPing, OnPong and OnClose callbacks.
	ReadMessage() (text bool, payload []byte, err error)
	// Write writes whole frames, waiting for the socket until deadline at
	// the latest.
	Write(frames []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	OnPing(f func(payload []byte))
	OnPong(f func())
	OnClose(f func(code int))
	Close() error
}

// Close codes the link sends, besides those of RFC 6455.
const (
	closeReplaced = 4000
	closeRevoked  = 4003
	// closeDraining tells a panel that this node is going away and when
	// to link again (to whichever node it then reaches).
	closeDraining  = 4010
	closeBadFrames = wsframe.ClosePolicyViolation
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
//
// A linked panel is mostly idle, and a node holds tens of thousands, so a
// connection keeps no goroutine but its reader: frames to send wait in a
// short queue, and a writer goroutine runs only while there is something
// to write. Pings come from a timer of its own.
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

	// closing is closed once, when the connection starts to shut down.
	closing   chan struct{}
	closeOnce sync.Once
	closeCode int
	closeText string

	// The write side: frames waiting, a pong owed to the panel (one at
	// most, however often it pings), and whether a writer is running.
	// writeTimeout bounds each write; a panel that stops reading is
	// closed rather than buffered without end.
	wmu          sync.Mutex
	outbox       [][]byte
	pong         []byte
	writing      bool
	writeTimeout time.Duration
	pinger       *time.Timer

	mu       sync.Mutex
	inflight *pendingCommand
	queue    []*pendingCommand
	maxQueue int
	seq      uint64
	closed   bool
	// storedStatus is statusDigest of the status stored for the panel, or
	// 0 while not known; check-ins and panel events keep it. A status.get
	// sent to the panel clears it and starts a new generation, since
	// whoever asked stores the answer: what a check-in recorded before
	// that answer must not be taken for it.
	storedStatus           uint64
	storedStatusGeneration uint64
}

// knownStatus returns the digest of the status stored for the panel (0
// while not known) and the generation it belongs to.
func (c *deviceConn) knownStatus() (digest, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.storedStatus, c.storedStatusGeneration
}

// learnStatus records digest as that of the status stored for the panel,
// unless a status.get was sent since generation was read.
func (c *deviceConn) learnStatus(generation, digest uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.storedStatusGeneration == generation {
		c.storedStatus = digest
	}
}

// maxOutbox bounds the frames waiting for one panel.
const maxOutbox = 32

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

func newDeviceConn(linkID string, p panelIdentity, sock Socket, maxQueue int, writeTimeout time.Duration) *deviceConn {
	return &deviceConn{
		linkID:       linkID,
		began:        time.Now().UTC(),
		panelID:      p.PanelID,
		accountID:    p.AccountID,
		locationID:   p.LocationID,
		serial:       p.Serial,
		sock:         sock,
		closing:      make(chan struct{}),
		maxQueue:     maxQueue,
		writeTimeout: writeTimeout,
	}
}

// enqueueFrame hands a data frame's payload to the writer. It never
// blocks: when the queue is full the panel is not keeping up and the
// connection closes.
func (c *deviceConn) enqueueFrame(payload []byte) bool {
	frame := wsframe.TextFrame(payload)
	c.wmu.Lock()
	if c.isClosing() {
		c.wmu.Unlock()
		return false
	}
	if len(c.outbox) >= maxOutbox {
		c.wmu.Unlock()
		c.shutdown(wsframe.CloseTryAgainLater, "panel is not reading its frames")
		return false
	}
	c.outbox = append(c.outbox, frame)
	c.startWriterLocked()
	c.wmu.Unlock()
	return true
}

// owePong queues the answer to a panel's ping, replacing one not yet
// sent: a panel that pings without reading costs one pong, not a queue.
func (c *deviceConn) owePong(appData []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosing() {
		return
	}
	c.pong = wsframe.PongFrame(appData)
	c.startWriterLocked()
}

// ping queues a ping and sets the next one.
func (c *deviceConn) ping(every time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosing() {
		return
	}
	c.outbox = append(c.outbox, wsframe.PingFrame)
	c.startWriterLocked()
	c.pinger.Reset(every)
}

// startPinging pings the panel every interval until the connection
// closes.
func (c *deviceConn) startPinging(every time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pinger = time.AfterFunc(every, func() { c.ping(every) })
}

// startWriterLocked starts a writer unless one is running. c.wmu is held.
func (c *deviceConn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// write sends what waits, in order (a pong first), until nothing does;
// once the connection is closing it sends the close frame instead and
// closes the socket, which ends the reader's read.
func (c *deviceConn) write() {
	for {
		c.wmu.Lock()
		var frame []byte
		switch {
		case c.isClosing():
			c.outbox, c.pong = nil, nil
			if c.pinger != nil {
				c.pinger.Stop()
			}
			c.wmu.Unlock()
			_ = c.sock.Write(wsframe.CloseFrame(c.closeCode, c.closeText), time.Now().Add(time.Second))
			_ = c.sock.Close()
			// writing stays true: nothing is written after the close.
			return
		case c.pong != nil:
			frame, c.pong = c.pong, nil
		case len(c.outbox) > 0:
			frame = c.outbox[0]
			c.outbox[0] = nil
			c.outbox = c.outbox[1:]
			if len(c.outbox) == 0 {
				// An idle connection keeps no queue's backing array.
				c.outbox = nil
			}
		default:
			c.writing = false
			c.wmu.Unlock()
			return
		}
		c.wmu.Unlock()
		if err := c.sock.Write(frame, time.Now().Add(c.writeTimeout)); err != nil {
			c.shutdown(wsframe.CloseGoingAway, "write failed")
			_ = c.sock.Close()
		}
	}
}

func (c *deviceConn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// shutdown starts closing the connection with a close code; the writer
// sends the close frame and closes the socket, and the reader then ends.
func (c *deviceConn) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.closeCode, c.closeText = code, text
		close(c.closing)
		c.startWriterLocked()
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
	if name == CmdStatusGet {
		c.storedStatus = 0
		c.storedStatusGeneration++
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
