package panel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/wsframe"
)

// LinkConfig tunes the device link.
type LinkConfig struct {
	// NodeID names this node in the panels table and in logs.
	NodeID string
	// CommandTimeout bounds how long a command waits for the panel when
	// the caller's context sets no earlier deadline.
	CommandTimeout time.Duration
	// CheckinInterval is what panels are told to use.
	CheckinInterval time.Duration
	PingInterval    time.Duration
	PongWait        time.Duration
	WriteTimeout    time.Duration
	// MaxQueuedCommands bounds the commands waiting behind the one in
	// flight for a single panel.
	MaxQueuedCommands int
	// MaxBadFrames is how many malformed frames a panel may send before
	// its connection is closed.
	MaxBadFrames int
	// Heartbeat is how often this node records that it is alive and looks
	// for panels left connected to a node that is not.
	Heartbeat time.Duration
	// NodeLostAfter is how long a node's heartbeat may be silent before
	// the panels it held are marked disconnected: three heartbeats unless
	// set.
	NodeLostAfter time.Duration
	// Ranks are the ranks this node's workers serve besides 0, as
	// models.FormatRanks writes them. The heartbeat records them so that
	// every node can tell a rank that no running node serves; the link
	// itself takes any panel whatever its rank.
	Ranks string
	// RelinkSpread is the window over which the panels of a node that
	// stops are told to link again, each at a random point of it.
	RelinkSpread time.Duration
	// AdmitRate bounds the panel links this node takes a second, and
	// AdmitBurst how many it takes at once above that rate; the rest are
	// answered 503 with a Retry-After that spreads them out. So are the
	// links that arrive while a second's links at the rate are still
	// waiting to be recorded.
	AdmitRate  float64
	AdmitBurst int
	// Metrics measures commands and heartbeats; nil measures nothing.
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *LinkConfig) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.NodeLostAfter <= 0 {
		c.NodeLostAfter = 3 * c.Heartbeat
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 30 * time.Second
	}
	if c.CheckinInterval <= 0 {
		c.CheckinInterval = 30 * time.Minute
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongWait <= 0 {
		c.PongWait = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxQueuedCommands <= 0 {
		c.MaxQueuedCommands = 16
	}
	if c.MaxBadFrames <= 0 {
		c.MaxBadFrames = 10
	}
	if c.RelinkSpread <= 0 {
		c.RelinkSpread = 10 * time.Second
	}
	if c.AdmitRate <= 0 {
		c.AdmitRate = DefaultAdmitRate
	}
	if c.AdmitBurst <= 0 {
		c.AdmitBurst = max(1, int(c.AdmitRate/5))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultAdmitRate is how many panel links a node takes a second unless
// told otherwise.
const DefaultAdmitRate = 1000

// Handler hears what a panel's link reports, each after it is recorded,
// so that work waiting on the panel can start. Its methods are called on
// the connection's own goroutine, with the panel and its location, and
// should return quickly. They are told no more than that: a fleet linking
// again, or checking in, would otherwise read every panel's row for each
// report, and what a handler decides on is in the location's record.
type Handler interface {
	// PanelLinked is told of every new connection, once the panel is
	// recorded connected and has been greeted.
	PanelLinked(ctx context.Context, panelID, locationID string)
	// PanelCheckedIn is told of every check-in.
	PanelCheckedIn(ctx context.Context, panelID, locationID string)
	// PanelUsersChanged is told of every user changed at the panel's
	// keypad.
	PanelUsersChanged(ctx context.Context, panelID, locationID string)
}

// Bus is what the link needs of the bus between nodes; *bus.Bus is one.
type Bus interface {
	// Available returns nil when the bus can be used now or after a short
	// reconnection, and bus.ErrUnavailable when it cannot.
	Available(ctx context.Context) error
	// RequestPanel sends a command for the panel to the node nodeID and
	// waits for its reply until ctx ends: bus.ErrNoResponders when that
	// node does not hold the panel or is gone, bus.ErrUnavailable when the
	// bus dropped.
	RequestPanel(ctx context.Context, nodeID, panelID string, cmd bus.Command) (bus.Reply, error)
	// PublishPanelControl tells every node, this one included, to let go
	// of the panel; the one holding it does.
	PublishPanelControl(panelID string, ctl bus.PanelControl) error
	// ServePanels hands s the commands sent to node nodeID and every
	// node's panel control messages, until stop is called.
	ServePanels(nodeID string, s bus.PanelServer) (stop func(), err error)
}

// Link holds this node's panel connections and routes commands to
// whichever node holds a panel's.
type Link struct {
	cfg    LinkConfig
	store  *models.Store
	events *models.EventLog
	bus    Bus
	log    *slog.Logger

	mu      sync.Mutex
	conns   map[string]*deviceConn
	handler Handler
	closed  bool
	serving sync.WaitGroup
	// stopServing ends this node's one subscription to the commands for
	// the panels it holds and to the panels' control messages.
	stopServing func()
	// dispatch waits for the heartbeat, which stopBus ends.
	dispatch  sync.WaitGroup
	stopBus   chan struct{}
	closeOnce sync.Once

	// fair tells the heartbeat when this node may judge its peers.
	fair models.FairWait

	// draining is set once the node stops taking panel links.
	draining atomic.Bool
	// opening counts the links taken but not yet recorded and told to the
	// handler.
	opening atomic.Int64
	admit   admission
	// seen writes when panels were last heard from, in batches.
	seen *lastSeen
	// links records new links, in batches.
	links *linkRecorder
}

// panelIdentity is what the link knows of an authenticated panel.
type panelIdentity struct {
	PanelID    string
	AccountID  string
	LocationID string
	Serial     string
}

// NewLink builds the link, serves this node's panels on the bus and starts
// its heartbeat.
func NewLink(cfg LinkConfig, store *models.Store, events *models.EventLog, b Bus) (*Link, error) {
	cfg.setDefaults()
	l := &Link{
		cfg:     cfg,
		store:   store,
		events:  events,
		bus:     b,
		log:     cfg.Logger,
		conns:   map[string]*deviceConn{},
		stopBus: make(chan struct{}),
		admit:   newAdmission(cfg.AdmitRate, cfg.AdmitBurst),
		seen:    startLastSeen(store, cfg.Logger, lastSeenEvery, lastSeenBatch),
	}
	stop, err := b.ServePanels(cfg.NodeID, bus.PanelServer{Command: l.serveCommand, Control: l.control})
	if err != nil {
		return nil, fmt.Errorf("serve this node's panels on the bus: %w", err)
	}
	l.stopServing = stop
	l.links = startLinkRecorder(linkWriters(store), l.recordLinks)
	l.dispatch.Add(1)
	go l.heartbeatLoop()
	return l, nil
}

// SetHandler registers who hears of connections, check-ins and keypad
// changes. It is set once while the node is wired, before panels connect.
func (l *Link) SetHandler(h Handler) {
	l.mu.Lock()
	l.handler = h
	l.mu.Unlock()
}

// currentHandler returns the registered handler, or nil.
func (l *Link) currentHandler() Handler {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handler
}

// Authenticate checks a panel's serial and device secret. A wrong secret
// changes nothing; a right secret that was revoked or has expired puts the
// panel in authorization_expired and is refused with that code.
func (l *Link) Authenticate(ctx context.Context, serial, secret string) (models.Panel, error) {
	refused := models.Errorf(models.CodeUnauthorized, "serial or device secret is wrong")
	p, err := l.store.PanelBySerial(ctx, serial)
	if err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			// Compare anyway so an unknown serial costs what a known one
			// does.
			auth.DeviceSecretMatches(secret, strings.Repeat("0", 64))
			return models.Panel{}, refused
		}
		return models.Panel{}, err
	}
	if !auth.DeviceSecretMatches(secret, p.SecretHash) {
		return models.Panel{}, refused
	}
	now := time.Now().UTC()
	if p.CredentialRevokedAt != nil || (p.CredentialExpiresAt != nil && !now.Before(*p.CredentialExpiresAt)) {
		err := l.store.Tx(ctx, func(ctx context.Context) error {
			changed, err := l.store.MarkPanelAuthorizationExpired(ctx, p.ID)
			if err != nil || !changed {
				return err
			}
			_, err = l.events.Append(ctx, models.NewEvent{
				AccountID: p.AccountID, LocationID: p.LocationID, Type: models.EventPanelAuthorizationExpired,
				Severity: models.SeverityError, Message: "The panel tried to connect, but its device credential has expired or was revoked; issue it a new one",
			})
			return err
		})
		if err != nil {
			return models.Panel{}, err
		}
		return models.Panel{}, models.Errorf(models.CodePanelAuthorizationExpired, "the device credential has expired or was revoked")
	}
	return p, nil
}

// Serve runs one authenticated panel connection until it closes, and
// returns when the panel is gone.
func (l *Link) Serve(ctx context.Context, p models.Panel, sock Socket) { <-l.Start(ctx, p, sock) }

// Start opens one authenticated panel connection on the calling goroutine
// (records it, greets the panel, tells the handler), then reads it on a
// goroutine of its own, and returns at once with a channel that is closed
// once the link has ended. The reading goroutine is all a linked panel
// keeps, so it starts with nothing on its stack but the connection, and
// whatever a frame asks of the database runs on a short-lived goroutine
// (see detached): an idle link holds the few KB of a blocked read, not the
// deep stack a transaction grew.
func (l *Link) Start(ctx context.Context, p models.Panel, sock Socket) <-chan struct{} {
	done := make(chan struct{})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = sock.Write(wsframe.CloseFrame(wsframe.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = sock.Close()
		close(done)
		return done
	}
	l.serving.Add(1)
	l.mu.Unlock()

	id := panelIdentity{PanelID: p.ID, AccountID: p.AccountID, LocationID: p.LocationID, Serial: p.Serial}
	c := newDeviceConn(models.NewID(), id, sock, l.cfg.MaxQueuedCommands, l.cfg.WriteTimeout)
	// The status stored when the panel authenticated is what its first
	// check-in is compared with, so a fleet linking again does not read
	// every panel's row a second time.
	c.storedStatus = storedDigest(p.StatusJSON)
	if !l.open(ctx, c) {
		_ = sock.Close()
		l.serving.Done()
		close(done)
		return done
	}
	go l.run(ctx, c, done)
	return done
}

// run reads the link until it ends, then records its end.
func (l *Link) run(ctx context.Context, c *deviceConn, done chan<- struct{}) {
	defer close(done)
	defer l.serving.Done()
	reason := l.readLoop(ctx, c)
	c.shutdown(wsframe.CloseNormal, "")
	c.failAll()
	detached(func() { l.end(ctx, c, reason) })
}

// open registers a new connection, greets the panel, records the link and
// tells the handler. It reports false when the connection could not be
// registered.
func (l *Link) open(ctx context.Context, c *deviceConn) bool {
	l.opening.Add(1)
	defer l.opening.Add(-1)
	if err := l.register(c); err != nil {
		l.log.Error("register panel connection", "panel_serial", c.serial, "link_id", c.linkID, "error", err.Error())
		return false
	}
	// The panel is greeted at once, whatever the database is doing: a
	// fleet linking together would otherwise wait for their writes in
	// turn and give up on a hello that comes too late. The frames it
	// sends meanwhile are read once the link is recorded.
	now := time.Now().UTC()
	hello, _ := json.Marshal(Frame{Type: FrameHello, ServerTime: &now, CheckinIntervalS: int(l.cfg.CheckinInterval / time.Second)})
	c.enqueueFrame(hello)
	c.startPinging(l.cfg.PingInterval)
	before, err := l.links.recordLink(c)
	switch {
	case errors.Is(err, errLinkRecorderStopped):
		// The node is stopping: Drain closes this link with the others,
		// each with the delay it spreads over the fleet.
		return true
	case err != nil:
		// A link the database does not name cannot be reached by a
		// command or a tap. Closing it brings the panel back, after its
		// own backoff, to a node that can record it.
		l.log.Error("record panel connected", "panel_serial", c.serial, "link_id", c.linkID, "error", err.Error())
		c.shutdown(wsframe.CloseTryAgainLater, "the link could not be recorded: link again")
		return true
	}
	l.admit.linkRecorded(time.Now())
	// Another node recorded as holding the panel (a link it has not yet
	// seen die) is told that a newer connection holds it now. A panel that
	// was disconnected, or is linking again after its node stopped, was
	// held by nobody, so a fleet relinking sends nothing over the bus.
	if before.Connection == models.PanelConnected && before.NodeID != "" && before.NodeID != l.cfg.NodeID {
		_ = l.bus.PublishPanelControl(c.panelID, bus.PanelControl{Op: bus.ControlTakeover, LinkID: c.linkID, ConnectedAt: c.began})
	}

	// The handler hears of the connection only now, so that any command it
	// starts reaches the panel after the hello.
	l.tellHandler(ctx, c, Handler.PanelLinked)
	return true
}

// end records a connection that has closed. A link this node closed to
// drain is not recorded one by one: Drain marked all of them at once, and
// the panel is expected back within seconds, here or on another node.
func (l *Link) end(ctx context.Context, c *deviceConn, reason string) {
	l.unregister(c)
	if c.closeCode != closeDraining {
		if err := l.recordDisconnected(context.WithoutCancel(ctx), c); err != nil {
			l.log.Error("record panel disconnected", "panel_serial", c.serial, "error", err.Error())
		}
	}
	l.log.Info("panel disconnected", "panel_serial", c.serial, "link_id", c.linkID, "reason", reason,
		"connected_for", time.Since(c.began).Round(time.Millisecond).String())
}

// detached runs f on a goroutine of its own and waits for it.
func detached(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// readLoop reads frames until the connection fails or closes, and returns
// why it ended.
func (l *Link) readLoop(ctx context.Context, c *deviceConn) string {
	alive := func() { _ = c.sock.SetReadDeadline(time.Now().Add(l.cfg.PongWait)) }
	c.sock.OnPong(alive)
	c.sock.OnPing(func(data []byte) {
		alive()
		c.owePong(data)
	})
	c.sock.OnClose(func(code int) {
		if code == wsframe.CloseNoStatus {
			code = wsframe.CloseNormal
		}
		c.shutdown(code, "closed by the panel")
	})
	bad := 0
	for {
		alive()
		text, data, err := c.sock.ReadMessage()
		if err != nil {
			var pe *wsframe.ProtocolError
			if errors.As(err, &pe) {
				c.shutdown(pe.Code, pe.Text)
			}
			select {
			case <-c.closing:
				return c.closeText
			default:
			}
			return err.Error()
		}
		if !text {
			bad++
			l.sendError(c, "bad_frame", "frames must be JSON text")
		} else {
			var handleErr error
			detached(func() { handleErr = l.handleFrame(ctx, c, data) })
			var fe *frameError
			switch {
			case errors.As(handleErr, &fe):
				bad++
				l.sendError(c, fe.code, fe.message)
			case handleErr != nil:
				l.log.Error("handle panel frame", "panel_serial", c.serial, "error", handleErr.Error())
			}
		}
		if bad >= l.cfg.MaxBadFrames {
			c.shutdown(closeBadFrames, "too many malformed frames")
			return "too many malformed frames"
		}
	}
}

// frameError is a frame the panel got wrong; it is answered with an error
// frame, not a crash.
type frameError struct{ code, message string }

func (e *frameError) Error() string { return e.code + ": " + e.message }

func badFrame(format string, args ...any) error {
	return &frameError{code: "bad_frame", message: fmt.Sprintf(format, args...)}
}

func (l *Link) sendError(c *deviceConn, code, message string) {
	b, _ := json.Marshal(Frame{Type: FrameErrorType, Code: code, Message: message})
	c.enqueueFrame(b)
}

func (l *Link) handleFrame(ctx context.Context, c *deviceConn, data []byte) error {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return badFrame("frame is not valid JSON: %s", err.Error())
	}
	switch f.Type {
	case FrameResult:
		if f.ID == "" || f.OK == nil {
			return badFrame("result needs id and ok")
		}
		r := busReply{OK: *f.OK, Data: f.Data, Error: f.Error}
		if !r.OK {
			if r.Error == nil {
				r.Error = &CommandError{Code: "unknown", Message: "the panel refused the command without a reason"}
			}
			// The failure is a panel error either way; the panel's own
			// words and code travel in the message, quoted, so a reader can
			// tell what the panel said from what the service says.
			r.Error = &CommandError{Code: FailPanelError, Message: fmt.Sprintf("the panel could not carry out the command; it said %q (its code %s)", truncate(r.Error.Message, 200), truncate(r.Error.Code, 64))}
		}
		c.finish(f.ID, r)
		return nil
	case FrameCheckin:
		if f.Status == nil {
			return badFrame("checkin needs status")
		}
		if err := f.Status.Validate(); err != nil {
			return badFrame("checkin status: %s", err.Error())
		}
		f.Status.Normalize()
		return l.recordCheckin(ctx, c, *f.Status)
	case FrameEvent:
		if f.Event == nil {
			return badFrame("event needs event")
		}
		if err := f.Event.Validate(); err != nil {
			return badFrame("event: %s", err.Error())
		}
		return l.recordPanelEvent(ctx, c, *f.Event)
	case "":
		return badFrame("frame needs a type")
	}
	return badFrame("unknown frame type %q", truncate(f.Type, 32))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// register makes c the panel's connection on this node, replacing and
// closing an older one. The panel needs nothing of its own on the bus:
// commands for it reach this node's one subscription once the panels
// table names this node, and its control messages reach every node. It
// cannot fail now; the error is kept for Serve, which handles one.
func (l *Link) register(c *deviceConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.conns[c.panelID]; ok {
		old.shutdown(closeReplaced, "replaced by a newer connection")
	}
	l.conns[c.panelID] = c
	return nil
}

// unregister drops c if it is still the panel's connection here: a
// command for the panel that reaches this node from then on is answered
// as not served.
func (l *Link) unregister(c *deviceConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[c.panelID] == c {
		delete(l.conns, c.panelID)
	}
}

func (l *Link) conn(panelID string) *deviceConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[panelID]
}

// ConnectedHere reports whether the panel's connection is on this node.
func (l *Link) ConnectedHere(panelID string) bool { return l.conn(panelID) != nil }

// serveCommand runs a command that came over the bus on the panel's
// connection here. It reports false when this node does not hold the
// panel, which the sender then looks for again.
func (l *Link) serveCommand(panelID string, cmd bus.Command, reply func(bus.Reply)) (held bool) {
	respond := func(r busReply) { reply(toBusReply(r)) }
	c := l.conn(panelID)
	if c == nil {
		return false
	}
	if cmd.Name == "" {
		respond(failReply(FailPanelError, "malformed command request"))
		return true
	}
	timeout := time.Duration(cmd.TimeoutMS) * time.Millisecond
	if timeout <= 0 || timeout > 10*time.Minute {
		timeout = l.cfg.CommandTimeout
	}
	c.submit(cmd.Name, cmd.Args, timeout, respond)
	return true
}

// control lets go of the panel's connection here when another node's
// newer connection took it over or its credential was revoked. Every
// node hears every panel's control messages; one for a panel not held
// here is nothing to do.
func (l *Link) control(panelID string, ctl bus.PanelControl) {
	c := l.conn(panelID)
	if c == nil {
		return
	}
	switch {
	case ctl.Op == bus.ControlTakeover && ctl.LinkID != c.linkID && c.olderThan(ctl):
		c.shutdown(closeReplaced, "replaced by a newer connection")
	case ctl.Op == bus.ControlKick:
		c.shutdown(closeRevoked, "device credential revoked")
	}
}

// send runs a command on a panel for Send, which measures it.
func (l *Link) send(ctx context.Context, panelID, name string, args any) (json.RawMessage, error) {
	timeout := l.cfg.CommandTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, failure(FailTimeout, "no time left to ask the panel")
	}
	rawArgs, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode %s arguments: %w", name, err)
	}
	// A panel connected here is asked directly, whether or not the bus
	// is up.
	if c := l.conn(panelID); c != nil {
		return l.sendHere(ctx, c, name, rawArgs, timeout)
	}
	nodeID, err := l.route(ctx, panelID)
	if err != nil {
		// The panel may have linked here since it was looked for.
		if c := l.conn(panelID); c != nil {
			return l.sendHere(ctx, c, name, rawArgs, timeout)
		}
		return nil, err
	}
	// A request made while the bus is down would wait in the client's
	// reconnect buffer until the command's deadline, and could reach the
	// panel long after its caller gave up.
	if err := l.bus.Available(ctx); err != nil {
		if c := l.conn(panelID); c != nil {
			return l.sendHere(ctx, c, name, rawArgs, timeout)
		}
		return nil, busUnavailable()
	}
	// The holding node answers at the deadline itself; the grace covers
	// the trip back, and the bus timeout only fires when that node died.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+2*time.Second)
	defer cancel()
	// A caller that gives up (a cancelled run) stops waiting at once; a
	// caller whose deadline passes still gets the holding node's answer.
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	cmd := bus.Command{Name: name, Args: rawArgs, TimeoutMS: timeout.Milliseconds()}
	r, err := l.bus.RequestPanel(rctx, nodeID, panelID, cmd)
	if errors.Is(err, bus.ErrNoResponders) && l.conn(panelID) == nil {
		// The node died or the panel left it; a panel that linked to
		// another node since is followed there, once.
		if next, routeErr := l.route(ctx, panelID); routeErr == nil && next != nodeID {
			r, err = l.bus.RequestPanel(rctx, next, panelID, cmd)
		}
	}
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		return nil, ctx.Err()
	case errors.Is(err, bus.ErrNoResponders):
		if c := l.conn(panelID); c != nil {
			// The panel linked here while the command was on its way.
			return l.sendHere(ctx, c, name, rawArgs, timeout)
		}
		return nil, l.unanswered(ctx, panelID)
	case errors.Is(err, bus.ErrUnavailable):
		// The bus dropped while the command was on its way.
		return nil, busUnavailable()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, failure(FailTimeout, "the panel did not answer in time")
	case err != nil:
		return nil, fmt.Errorf("send %s over the bus: %w", name, err)
	}
	return answer(fromBusReply(r))
}

// route returns the node that the panels table names as holding the
// panel's connection, or a panel_disconnected failure when none does. A
// panel recorded on this node that this node does not hold has just gone:
// its link is closing.
func (l *Link) route(ctx context.Context, panelID string) (nodeID string, err error) {
	nodeID, connected, err := l.store.PanelRoute(ctx, panelID)
	switch {
	case err != nil && models.ErrorCode(err) != models.CodeNotFound:
		return "", fmt.Errorf("find the server the panel is connected to: %w", err)
	case err != nil, !connected, nodeID == l.cfg.NodeID:
		return "", failure(FailDisconnected, "the panel is not connected")
	}
	return nodeID, nil
}

// sendHere runs a command on a panel connected to this node without the
// bus, as its dispatcher would on a command from the bus.
func (l *Link) sendHere(ctx context.Context, c *deviceConn, name string, args json.RawMessage, timeout time.Duration) (json.RawMessage, error) {
	replied := make(chan busReply, 1)
	c.submit(name, args, timeout, func(r busReply) { replied <- r })
	// The connection answers every command by its deadline; only a caller
	// that gives up stops waiting sooner.
	select {
	case r := <-replied:
		return answer(r)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, ctx.Err()
		}
		return answer(<-replied)
	}
}

// answer converts the holding node's reply into Send's result.
func answer(r busReply) (json.RawMessage, error) {
	if !r.OK {
		if r.Error == nil {
			return nil, failure(FailPanelError, "the panel refused without a reason")
		}
		return nil, failure(r.Error.Code, "%s", r.Error.Message)
	}
	return r.Data, nil
}

// unanswered explains a command that the node named as holding the panel
// did not take. Usually that node let go of the panel, or died with it.
// But a node whose connection to the bus is coming back has not yet
// subscribed again: when the panel is recorded as connected to a node
// that is alive, the bus is at fault, not the panel, and the caller should
// try again rather than report the panel offline.
func (l *Link) unanswered(ctx context.Context, panelID string) error {
	// This node knows what it holds: a panel recorded here that it does
	// not hold has just gone.
	held, err := l.store.PanelHeldByLiveNode(context.WithoutCancel(ctx), panelID, l.cfg.NodeID, time.Now().UTC().Add(-l.cfg.NodeLostAfter))
	if err == nil && held {
		return busUnavailable()
	}
	return failure(FailDisconnected, "the panel is not connected")
}

func busUnavailable() *CommandFailure {
	return failure(FailBusUnavailable, "the message bus between servers is down, so the command could not reach the server the panel is connected to")
}

// Kick tells whichever node holds the panel to drop its connection, as
// when its credential is revoked. It goes to every node, with no look-up
// of the node that holds the panel: kicks are rare.
func (l *Link) Kick(panelID string) error {
	return l.bus.PublishPanelControl(panelID, bus.PanelControl{Op: bus.ControlKick})
}

// Close drops every panel connection with "going away" and waits for
// their goroutines, so the database is still open while they record the
// disconnections.
func (l *Link) Close(ctx context.Context) {
	l.closeOnce.Do(func() { l.close(ctx) })
}

func (l *Link) close(ctx context.Context) {
	l.Drain()
	l.mu.Lock()
	l.closed = true
	held := make([]*deviceConn, 0, len(l.conns))
	for _, c := range l.conns {
		held = append(held, c)
	}
	l.mu.Unlock()
	l.releaseAll(ctx, held)
	done := make(chan struct{})
	go func() {
		l.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		l.log.Warn("panel connections still closing at shutdown deadline")
	}
	l.stopServing()
	close(l.stopBus)
	l.dispatch.Wait()
	l.links.close()
	l.seen.close(ctx)
	// A node that stops cleanly has closed its links and marked its panels;
	// it leaves the nodes table so that nobody waits for its heartbeat.
	forget, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.store.RemoveNode(forget, l.cfg.NodeID, time.Now().UTC().Add(-forgetNodesAfter)); err != nil {
		l.log.Warn("leave the nodes table", "error", err.Error())
	}
}

// releaseAll lets go of the panels this node holds as it stops. Each is
// told to link again after a delay of its own, spread over RelinkSpread,
// so that a fleet does not return all at once, to this node restarted or
// to another. Their panels are marked relinking in one statement, rather
// than each disconnected with an Event Log entry and connected again with
// another seconds later; a panel that has not linked again within
// NodeLostAfter is then marked disconnected by the heartbeat sweep.
func (l *Link) releaseAll(ctx context.Context, held []*deviceConn) {
	if len(held) == 0 {
		return
	}
	mark, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n, err := l.store.MarkNodePanelsRelinking(mark, l.cfg.NodeID)
	if err != nil {
		// Without the mark, each link's end records its panel
		// disconnected, as when a panel goes.
		l.log.Warn("mark this node's panels relinking", "error", err.Error())
		for _, c := range held {
			c.shutdown(wsframe.CloseGoingAway, "server shutting down")
		}
		return
	}
	l.log.Info("panels told to link again", "panels", len(held), "marked", n, "spread", l.cfg.RelinkSpread.String())
	for _, c := range held {
		c.shutdown(closeDraining, "reconnect_after_ms="+strconv.FormatInt(l.relinkDelay().Milliseconds(), 10))
	}
}

// relinkDelay is how long one released panel waits before it links again:
// at least a tenth of RelinkSpread, at most all of it, uniformly between.
func (l *Link) relinkDelay() time.Duration {
	lo := l.cfg.RelinkSpread / 10
	return lo + rand.N(l.cfg.RelinkSpread-lo+1)
}

// Drain stops this node taking panel links: Admit refuses every new one
// from now on, so that a node on its way down does not accept a link only
// to drop it.
func (l *Link) Drain() { l.draining.Store(true) }

// ConnectedCount is how many panels are connected to this node.
func (l *Link) ConnectedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// OpeningCount returns how many links this node has taken and is still
// recording: their link written, the handler told.
func (l *Link) OpeningCount() int { return int(l.opening.Load()) }

// RotateCredential issues the location's panel a new device secret, shown
// once: the old secret stops working and a panel still linked with it is
// dropped.
func (l *Link) RotateCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, string, error) {
	secret, digest := auth.NewDeviceSecret()
	v, err := l.store.RotatePanelCredential(ctx, actor, locationID, digest, nil)
	if err != nil {
		return models.LocationView{}, "", err
	}
	if err := l.Kick(v.Panel.ID); err != nil {
		l.log.Warn("drop panel after credential rotation", "error", err.Error())
	}
	return v, secret, nil
}

// RevokeCredential ends the location's panel credential: the panel is
// dropped, cannot link again, and shows authorization_expired.
func (l *Link) RevokeCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, error) {
	var v models.LocationView
	err := l.store.Tx(ctx, func(ctx context.Context) error {
		var err error
		v, err = l.store.RevokePanelCredential(ctx, actor, locationID, time.Now().UTC())
		if err != nil {
			return err
		}
		_, err = l.events.Append(ctx, models.NewEvent{
			AccountID: v.Location.AccountID, LocationID: locationID, Type: models.EventPanelAuthorizationExpired,
			Severity: models.SeverityError, Message: "Panel's device credential revoked by " + actor.Name + ": the panel cannot connect until it is issued a new one",
			Data: map[string]any{"serial": v.Panel.Serial},
		})
		return err
	})
	if err != nil {
		return models.LocationView{}, err
	}
	if err := l.Kick(v.Panel.ID); err != nil {
		l.log.Warn("drop panel after credential revocation", "error", err.Error())
	}
	return v, nil
}
