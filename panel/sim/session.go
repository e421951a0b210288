package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/panel"
)

// maxQueuedCommands bounds the commands waiting behind the one being
// answered. The server keeps one in flight per panel, so reaching it means
// the server is misbehaving; further commands are answered busy.
const maxQueuedCommands = 16

// Error codes the simulated panel answers with.
const (
	codeInvalidArgs    = "invalid_args"
	codeUnknownCommand = "unknown_command"
	codePanelError     = "panel_error"
	codeBusy           = "busy"
	codeTooLarge       = "too_large"
)

// session is one live link. Frames are written by the session's loop and
// by the control methods of Panel, so writes are serialised by writeMu.
type session struct {
	p       *Panel
	conn    *websocket.Conn
	writeMu sync.Mutex
	// dropped is closed to end the link at once, as a network failure would.
	dropped  chan struct{}
	dropOnce sync.Once
	// done is closed when the session's loop has returned, so that the
	// reader stops handing it frames.
	done chan struct{}
	// readDone is closed when the reader has returned; readErr says why.
	readDone chan struct{}
	readErr  error
}

func (s *session) drop() {
	s.dropOnce.Do(func() { close(s.dropped) })
}

// write sends one frame, bounded by the write timeout. A failed write
// leaves the connection unusable, so it is closed; the reader then ends
// the session.
func (s *session) write(f panel.Frame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	if len(data) > panel.MaxFrameBytes {
		return fmt.Errorf("%s frame of %d bytes exceeds the frame limit", f.Type, len(data))
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		_ = s.conn.Close()
		return fmt.Errorf("write %s frame: %w", f.Type, err)
	}
	return nil
}

func (s *session) sendCheckin() error {
	st := s.p.state.statusCopy()
	s.p.count(func(st *Stats) { st.Checkins++ })
	return s.write(panel.Frame{Type: panel.FrameCheckin, Status: &st})
}

// serve runs one link until it fails, is dropped or ctx ends, and tells
// Run how it ended: whether the server said hello, which shows the link
// was healthy, and whether the server ended it.
func (p *Panel) serve(ctx context.Context, conn *websocket.Conn) (end linkEnd) {
	s := &session{p: p, conn: conn, dropped: make(chan struct{}), done: make(chan struct{}), readDone: make(chan struct{})}
	p.mu.Lock()
	p.session = s
	p.stats.Connects++
	p.mu.Unlock()
	p.log.Debug("link open")

	frames := make(chan panel.Frame)
	conn.SetReadLimit(panel.MaxFrameBytes)
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(readTimeout)) }
	extend()
	answerPing := conn.PingHandler()
	conn.SetPingHandler(func(data string) error { extend(); return answerPing(data) })
	conn.SetPongHandler(func(string) error { extend(); return nil })
	go s.readLoop(frames, extend)

	defer func() {
		close(s.done)
		if ctx.Err() != nil {
			// Leaving on purpose: say goodbye properly.
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "panel shutting down"),
				time.Now().Add(time.Second))
		}
		_ = conn.Close()
		<-s.readDone
		p.mu.Lock()
		p.session = nil
		p.stats.Disconnects++
		p.setStateLocked(StateConnecting, nil)
		p.mu.Unlock()
		p.log.Debug("link closed", "err", end.err)
	}()

	loop := newSessionLoop(s)
	defer loop.stop()
	ended := func(byServer bool, err error) linkEnd {
		return linkEnd{greeted: loop.greeted, helloAt: loop.helloAt, endedAt: time.Now(), byServer: byServer, err: err}
	}
	for {
		select {
		case <-ctx.Done():
			return ended(false, nil)
		case <-s.dropped:
			return ended(false, errors.New("link dropped"))
		case <-s.readDone:
			return ended(true, s.readErr)
		case f := <-frames:
			if err := loop.handleFrame(f); err != nil {
				return ended(false, err)
			}
		case <-loop.helloTimer.C:
			p.log.Warn("server sent no hello; checking in at the default interval")
			if err := loop.greet(0); err != nil {
				return ended(false, err)
			}
		case <-loop.answerC:
			loop.answerC = nil
			if err := loop.answerHead(); err != nil {
				return ended(false, err)
			}
		case <-loop.checkinC:
			if err := s.sendCheckin(); err != nil {
				return ended(false, err)
			}
		case <-loop.pingTicker.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return ended(false, fmt.Errorf("ping: %w", err))
			}
		case <-loop.flapC:
			p.log.Debug("dropping the link (flap)")
			return ended(false, errors.New("link dropped (flap)"))
		case <-loop.keypadC:
			loop.keypadTimer.Reset(jittered(p.opts.KeypadChangeEvery))
			if number, ok := p.state.keypadChange(); ok {
				p.sendEvent(panel.PanelEvent{Kind: panel.EventUserChanged, UserNumber: number, At: time.Now().UTC()})
			}
		case <-loop.activityC:
			loop.activityTimer.Reset(jittered(p.opts.EventEvery))
			if ev, ok := p.state.randomActivity(time.Now().UTC()); ok {
				p.sendEvent(ev)
			}
		}
		if err := loop.startNext(); err != nil {
			return ended(false, err)
		}
	}
}

// readLoop decodes frames until the connection fails. It is the only
// reader of the connection.
func (s *session) readLoop(frames chan<- panel.Frame, extend func()) {
	defer close(s.readDone)
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.readErr = err
			return
		}
		extend()
		var f panel.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			s.p.log.Warn("undecodable frame from server", "err", err, "bytes", len(data))
			continue
		}
		select {
		case frames <- f:
		case <-s.done:
			// The loop has gone; its Close ends the next ReadMessage.
		}
	}
}

// sessionLoop is the state of one link's loop: its timers and the queue
// of commands. Only the session's loop goroutine touches it.
type sessionLoop struct {
	s       *session
	greeted bool
	// helloAt is when the server's hello arrived; zero until it does.
	helloAt time.Time
	queue   []panel.Frame // the head is being answered when answerC is set

	helloTimer    *time.Timer
	pingTicker    *time.Ticker
	answerTimer   *time.Timer
	answerC       <-chan time.Time
	checkinTicker *time.Ticker
	checkinC      <-chan time.Time
	flapTimer     *time.Timer
	flapC         <-chan time.Time
	keypadTimer   *time.Timer
	keypadC       <-chan time.Time
	activityTimer *time.Timer
	activityC     <-chan time.Time
}

func newSessionLoop(s *session) *sessionLoop {
	opts := s.p.opts
	l := &sessionLoop{
		s:           s,
		helloTimer:  time.NewTimer(helloTimeout),
		pingTicker:  time.NewTicker(pingInterval),
		answerTimer: time.NewTimer(time.Hour),
	}
	l.answerTimer.Stop()
	if opts.FlapEvery > 0 {
		l.flapTimer = time.NewTimer(jittered(opts.FlapEvery))
		l.flapC = l.flapTimer.C
	}
	return l
}

func (l *sessionLoop) stop() {
	for _, t := range []*time.Timer{l.helloTimer, l.answerTimer, l.flapTimer, l.keypadTimer, l.activityTimer} {
		if t != nil {
			t.Stop()
		}
	}
	for _, t := range []*time.Ticker{l.pingTicker, l.checkinTicker} {
		if t != nil {
			t.Stop()
		}
	}
}

func (l *sessionLoop) handleFrame(f panel.Frame) error {
	p := l.s.p
	switch f.Type {
	case panel.FrameHello:
		if l.greeted {
			return nil
		}
		l.helloAt = time.Now()
		l.helloTimer.Stop()
		return l.greet(time.Duration(f.CheckinIntervalS) * time.Second)
	case panel.FrameCommand:
		if len(l.queue) >= maxQueuedCommands {
			return l.s.writeResult(f, nil, &panel.CommandError{Code: codeBusy, Message: "panel is busy with earlier commands"})
		}
		l.queue = append(l.queue, f)
	case panel.FrameErrorType:
		p.log.Warn("server reported a protocol error", "code", f.Code, "message", f.Message)
	default:
		p.log.Debug("ignoring frame", "type", f.Type)
	}
	return nil
}

// greet marks the link connected once the server has said hello, starts
// the periodic activity and checks in at once so that the server learns
// the panel's status without asking.
func (l *sessionLoop) greet(serverInterval time.Duration) error {
	p := l.s.p
	l.greeted = true
	interval := DefaultCheckinInterval
	if serverInterval > 0 {
		interval = serverInterval
	}
	if p.opts.CheckinInterval > 0 {
		interval = p.opts.CheckinInterval
	}
	l.checkinTicker = time.NewTicker(interval)
	l.checkinC = l.checkinTicker.C
	if d := p.opts.KeypadChangeEvery; d > 0 {
		l.keypadTimer = time.NewTimer(jittered(d))
		l.keypadC = l.keypadTimer.C
	}
	if d := p.opts.EventEvery; d > 0 {
		l.activityTimer = time.NewTimer(jittered(d))
		l.activityC = l.activityTimer.C
	}
	p.setState(StateConnected, nil)
	p.log.Debug("linked", "checkin_interval", interval)
	return l.s.sendCheckin()
}

// startNext begins answering the command at the head of the queue, if no
// command is being answered. Panels answer one command at a time. Commands
// lost to an injected timeout or to unresponsiveness are dropped here.
func (l *sessionLoop) startNext() error {
	p := l.s.p
	for l.answerC == nil && len(l.queue) > 0 {
		if l.shouldIgnore() {
			p.count(func(st *Stats) { st.Ignored++ })
			l.queue = l.queue[1:]
			continue
		}
		if d := p.answerDelay(); d > 0 {
			l.answerTimer.Reset(d)
			l.answerC = l.answerTimer.C
			return nil
		}
		if err := l.answerHead(); err != nil {
			return err
		}
	}
	return nil
}

func (l *sessionLoop) shouldIgnore() bool {
	p := l.s.p
	unresponsive, _, _ := p.faults()
	return unresponsive || p.state.chance(p.opts.TimeoutRate)
}

// answerHead answers the command at the head of the queue and removes it.
func (l *sessionLoop) answerHead() error {
	cmd := l.queue[0]
	l.queue = l.queue[1:]
	p := l.s.p
	// The panel may have gone unresponsive while the answer was delayed.
	unresponsive, errorRate, _ := p.faults()
	if unresponsive {
		p.count(func(st *Stats) { st.Ignored++ })
		return nil
	}
	if p.state.chance(errorRate) {
		return l.s.writeResult(cmd, nil, &panel.CommandError{Code: codePanelError, Message: "panel reported an internal error"})
	}
	data, cmdErr := p.execute(cmd)
	return l.s.writeResult(cmd, data, cmdErr)
}

// writeResult sends a command's result and counts it. An answer too large
// for one frame is replaced by a too_large error.
func (s *session) writeResult(cmd panel.Frame, data any, cmdErr *panel.CommandError) error {
	f := panel.Frame{Type: panel.FrameResult, ID: cmd.ID}
	ok := cmdErr == nil
	if ok {
		raw, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("encode %s result: %w", cmd.Name, err)
		}
		// Leave room for the envelope.
		if len(raw) > panel.MaxFrameBytes-1024 {
			ok = false
			cmdErr = &panel.CommandError{Code: codeTooLarge, Message: "the answer exceeds the frame size limit"}
		} else {
			f.Data = raw
		}
	}
	f.OK = &ok
	f.Error = cmdErr
	name := cmd.Name
	if !knownCommand(name) {
		name = "unknown"
	}
	// Counted before sending, so that whoever receives the answer sees it
	// in Stats already.
	s.p.count(func(st *Stats) {
		st.Commands[name]++
		if !ok {
			st.CommandErrors++
		}
	})
	return s.write(f)
}

func knownCommand(name string) bool {
	switch name {
	case panel.CmdUsersGet, panel.CmdUsersPut, panel.CmdConfigGet, panel.CmdStatusGet:
		return true
	}
	return false
}
