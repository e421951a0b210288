// Package sim simulates alarm panels that speak the device protocol of
// package panel: they dial the server's /device/v1/link WebSocket with
// their credentials, answer its commands from realistic generated state,
// check in and report events. cmd/panelsim runs thousands of them as a
// load and demo tool; the demo and the tests run them in-process.
//
// A panel's users, configuration and status are generated from its serial
// and Options.Seed, so they are the same on every run. Faults (latency,
// errors, timeouts, users refused by users.put, dropped connections) and
// activity (keypad changes, arming, troubles) are injected by Options and
// by the control methods on Panel, which are safe to call from any
// goroutine. Like real panels, a simulated one applies the users of a
// users.put it accepts and refuses the others one by one, protected user
// numbers among them.
//
// A panel reconnects after a lost link with exponential backoff and
// jitter, and honours a server that restarts calmly: a link closed with
// CloseDraining (4010) and the reason "reconnect_after_ms=N" is dialled
// again after N milliseconds (at most five minutes; 1 to 5 seconds when
// the reason is missing or malformed), and a dial answered 503 or 429
// with a Retry-After (seconds or an HTTP date) waits that long plus up to
// half of it again. Stats counts the drain closes, and the links the
// server accepted and then dropped.
package sim

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/panel"
)

// Errors reported by Panel.
var (
	// ErrAuthRejected means the server refused the panel's credentials
	// (HTTP 401 or 403). The panel keeps retrying, slowly.
	ErrAuthRejected = errors.New("server rejected the panel's credentials")
	// ErrNotConnected is returned by sends while the panel has no link.
	ErrNotConnected = errors.New("panel is not connected")
	// ErrNoSuchUser is returned by RemoveUser for an empty user slot.
	ErrNoSuchUser = errors.New("no such user")
)

// State is where a panel's link stands.
type State int

// Link states.
const (
	// StateIdle: Run has not been called yet.
	StateIdle State = iota
	// StateConnecting: dialling, or waiting to dial again after a failure.
	StateConnecting
	// StateConnected: the link is up and the server has said hello.
	StateConnected
	// StateAuthRejected: the last dial was refused with HTTP 401 or 403.
	StateAuthRejected
	// StateStopped: Run has returned.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateAuthRejected:
		return "auth_rejected"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Stats counts what a panel has done since it was created.
type Stats struct {
	// Connects counts links established; Disconnects counts links lost
	// or dropped.
	Connects, Disconnects int64
	// DrainCloses counts links the server closed with CloseDraining, a
	// calm end after which the panel waits as the server asked.
	DrainCloses int64
	// DroppedLinks counts links the server accepted and then dropped:
	// they ended, by the server's close or a failed read, before its
	// hello, or the server closed them within a few seconds of hello
	// with a code other than CloseDraining, CloseReplaced or
	// CloseRevoked. A node that upgrades links it cannot keep shows here.
	DroppedLinks int64
	// AuthRejections counts dials refused with HTTP 401 or 403.
	AuthRejections int64
	// DialFailures counts the other dials that failed, by kind (see
	// DialFailureKind): a fleet pointed at the wrong address or scheme
	// says so rather than waiting in silence. A 503 or 429 counts here
	// whether or not it carried a Retry-After.
	DialFailures map[string]int64
	// Commands counts answered commands by name, failures included, as
	// the answer is sent.
	// Names the panel does not know are counted under "unknown".
	Commands map[string]int64
	// CommandErrors counts commands answered with ok:false.
	CommandErrors int64
	// Ignored counts commands never answered: injected timeouts and those
	// received while unresponsive.
	Ignored int64
	// UsersRefused counts users that users.put commands answered ok refused
	// one by one: protected, invalid, not fitting, or failed by
	// Options.PutFailureRate.
	UsersRefused int64
	// Checkins and Events count frames sent. They are counted as the send
	// starts, so that whoever receives a frame already sees it here.
	Checkins, Events int64
}

// Answered is the number of commands answered, successfully or not.
func (s Stats) Answered() int64 {
	var n int64
	for _, c := range s.Commands {
		n += c
	}
	return n
}

// Add sums o into s, for the totals of a fleet, or of fleets run by
// several processes.
func (s *Stats) Add(o Stats) {
	s.Connects += o.Connects
	s.Disconnects += o.Disconnects
	s.DrainCloses += o.DrainCloses
	s.DroppedLinks += o.DroppedLinks
	s.AuthRejections += o.AuthRejections
	if len(o.DialFailures) > 0 && s.DialFailures == nil {
		s.DialFailures = make(map[string]int64)
	}
	for kind, n := range o.DialFailures {
		s.DialFailures[kind] += n
	}
	s.CommandErrors += o.CommandErrors
	s.Ignored += o.Ignored
	s.UsersRefused += o.UsersRefused
	s.Checkins += o.Checkins
	s.Events += o.Events
	if s.Commands == nil {
		s.Commands = make(map[string]int64)
	}
	for name, n := range o.Commands {
		s.Commands[name] += n
	}
}

// Panel is one simulated alarm panel. Create it with NewPanel and start it
// with Run; cancelling the context given to Run stops it. Every other
// method is safe to call from any goroutine, before, during or after Run.
type Panel struct {
	cred  Credentials
	opts  Options
	log   *slog.Logger
	state *state

	// Set by Fleet before Run to share resources between many panels.
	dialer     *websocket.Dialer
	dialSlots  chan struct{} // caps concurrent dials; nil means no cap
	startDelay time.Duration

	running atomic.Bool

	mu           sync.Mutex
	session      *session // the current link, nil when there is none
	linkState    State
	lastErr      error
	connectedNow chan struct{} // closed while connected, replaced on disconnect
	unresponsive bool
	errorRate    float64
	latency      time.Duration
	stats        Stats
}

// NewPanel returns a panel with state generated from cred.Serial and
// opts.Seed. Options are checked by Run.
func NewPanel(cred Credentials, opts Options) *Panel {
	return &Panel{
		cred:         cred,
		opts:         opts,
		log:          opts.logger().With("serial", cred.Serial),
		state:        newState(cred.Serial, opts, newEpoch()),
		dialer:       newDialer(),
		connectedNow: make(chan struct{}),
		errorRate:    opts.ErrorRate,
		latency:      opts.Latency,
		stats:        Stats{Commands: make(map[string]int64)},
	}
}

// Serial is the panel's serial number.
func (p *Panel) Serial() string { return p.cred.Serial }

// Credentials returns the panel's credentials.
func (p *Panel) Credentials() Credentials { return p.cred }

// State returns where the panel's link stands.
func (p *Panel) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.linkState
}

// LastError returns why the last dial or link failed, or nil.
func (p *Panel) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Connected reports whether the panel's link is up and greeted.
func (p *Panel) Connected() bool {
	return p.State() == StateConnected
}

// WaitConnected blocks until the panel is connected or ctx ends.
func (p *Panel) WaitConnected(ctx context.Context) error {
	for {
		p.mu.Lock()
		connected, ch := p.linkState == StateConnected, p.connectedNow
		p.mu.Unlock()
		if connected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Disconnect drops the current link, as a network failure would; Run
// reconnects after its usual backoff. It does nothing when not connected.
func (p *Panel) Disconnect() {
	p.mu.Lock()
	s := p.session
	p.mu.Unlock()
	if s != nil {
		s.drop()
	}
}

// SetUnresponsive makes the panel stop answering commands entirely, so
// that the server sees timeouts, or answer again.
func (p *Panel) SetUnresponsive(unresponsive bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unresponsive = unresponsive
}

// SetErrorRate changes the fraction of commands answered with a
// panel_error. It is clamped to 0..1.
func (p *Panel) SetErrorRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errorRate = min(max(rate, 0), 1)
}

// SetLatency changes the delay before each answer; Options.LatencyJitter
// still applies on top.
func (p *Panel) SetLatency(latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = max(latency, 0)
}

// SetArmed arms or disarms one partition, or all for partition 0, as if at
// the keypad: it updates the status and, when connected, sends an armed or
// disarmed event for each partition whose state changed. Setting the state
// a partition already has changes nothing and sends nothing.
func (p *Panel) SetArmed(partition int, armedState string) error {
	events, err := p.state.setArmed(partition, armedState, 0, time.Now().UTC())
	if err != nil {
		return err
	}
	for _, ev := range events {
		p.sendEvent(ev)
	}
	return nil
}

// Users returns a copy of the panel's users, ordered by number, including
// their codes so that a test can check that no code leaks anywhere.
func (p *Panel) Users() []panel.User { return p.state.usersCopy() }

// PutUser adds or replaces a user as if at the keypad: it bumps the
// revision and, when connected and something changed, sends a
// user_changed event. A user given with has_code and no code keeps its
// current code.
func (p *Panel) PutUser(u panel.User) error {
	changed, err := p.state.putUser(u)
	if err != nil {
		return err
	}
	if changed {
		p.sendEvent(panel.PanelEvent{Kind: panel.EventUserChanged, UserNumber: u.Number, At: time.Now().UTC()})
	}
	return nil
}

// RemoveUser deletes a user as if at the keypad and, when connected, sends
// a user_changed event. It returns ErrNoSuchUser for an empty slot.
func (p *Panel) RemoveUser(number int) error {
	if err := p.state.removeUser(number); err != nil {
		return err
	}
	p.sendEvent(panel.PanelEvent{Kind: panel.EventUserChanged, UserNumber: number, At: time.Now().UTC()})
	return nil
}

// Watermark returns the panel's current users watermark.
func (p *Panel) Watermark() string { return p.state.watermark() }

// Config returns a copy of the panel's configuration.
func (p *Panel) Config() panel.Config { return p.state.configCopy() }

// Status returns a copy of the panel's live status.
func (p *Panel) Status() panel.Status { return p.state.statusCopy() }

// SendCheckin sends a check-in with the current status now. It returns
// ErrNotConnected when there is no link.
func (p *Panel) SendCheckin() error {
	s := p.greetedSession()
	if s == nil {
		return ErrNotConnected
	}
	return s.sendCheckin()
}

// Stats returns a copy of the panel's counters.
func (p *Panel) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.Commands = make(map[string]int64, len(p.stats.Commands))
	for name, n := range p.stats.Commands {
		st.Commands[name] = n
	}
	st.DialFailures = maps.Clone(p.stats.DialFailures)
	return st
}

// sendEvent sends an unsolicited event if the panel is connected. Panels
// in this simulation do not buffer events while offline.
func (p *Panel) sendEvent(ev panel.PanelEvent) {
	s := p.greetedSession()
	if s == nil {
		return
	}
	p.count(func(st *Stats) { st.Events++ })
	if err := s.write(panel.Frame{Type: panel.FrameEvent, Event: &ev}); err != nil {
		p.log.Debug("event not sent", "kind", ev.Kind, "err", err)
	}
}

// greetedSession returns the current link if the server has said hello.
func (p *Panel) greetedSession() *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.linkState != StateConnected {
		return nil
	}
	return p.session
}

func (p *Panel) count(f func(*Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

func (p *Panel) setState(st State, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStateLocked(st, err)
}

func (p *Panel) setStateLocked(st State, err error) {
	if st == StateConnected && p.linkState != StateConnected {
		close(p.connectedNow)
	}
	if st != StateConnected && p.linkState == StateConnected {
		p.connectedNow = make(chan struct{})
	}
	p.linkState = st
	if err != nil {
		p.lastErr = err
	}
}

// faults returns the fault settings for one command.
func (p *Panel) faults() (unresponsive bool, errorRate float64, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unresponsive, p.errorRate, p.latency
}

// answerDelay is how long to wait before answering one command.
func (p *Panel) answerDelay() time.Duration {
	_, _, d := p.faults()
	if j := p.opts.LatencyJitter; j > 0 {
		d += rand.N(j)
	}
	return d
}
