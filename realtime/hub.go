package realtime

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/wsframe"
)

// Bus is what the hub needs of the bus between nodes; *bus.Bus is one.
// Each subscription's function runs on the publisher's goroutine for this
// node's messages, so the hub's never block.
type Bus interface {
	SubscribeEvents(accountID string, f func(bus.Event)) (unsubscribe func(), err error)
	SubscribeGrantRevoked(f func(bus.GrantRevoked)) (unsubscribe func(), err error)
	SubscribeCredentialEnded(f func(bus.CredentialEnded)) (unsubscribe func(), err error)
}

// Config tunes the hub.
type Config struct {
	// SendQueue bounds the frames waiting for one client; a client that
	// falls this far behind is closed with 4008 and resumes by offset.
	SendQueue    int
	PingInterval time.Duration
	PongWait     time.Duration
	WriteTimeout time.Duration
	// GapWait is how long an event that arrived ahead of its predecessors
	// waits for them before they are read from the database.
	GapWait time.Duration
	// HealInterval is how often a stream checks the log for an event the
	// bus lost.
	HealInterval time.Duration
	// StreamQueue bounds the events from the bus waiting for one
	// account's stream; what does not fit is read back from the Event
	// Log.
	StreamQueue int
	ReplayPage  int
	// ReplayWait is how long a replay waits for room in a client's queue.
	ReplayWait   time.Duration
	MaxBadFrames int
	// WriterShare is the fewest live clients of one account worth a
	// fan-out writer of their own; a larger audience is split over up to
	// one writer per core.
	WriterShare int
	// Metrics measures the fan-out; nil measures nothing.
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.SendQueue <= 0 {
		// The queue is what waits beyond the socket's own buffers (which
		// hold thousands of events); its slots are allocated up front for
		// every connection, so it stays small.
		c.SendQueue = 64
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
	if c.GapWait <= 0 {
		c.GapWait = 250 * time.Millisecond
	}
	if c.HealInterval <= 0 {
		c.HealInterval = 5 * time.Second
	}
	if c.StreamQueue <= 0 {
		c.StreamQueue = 1024
	}
	if c.ReplayPage <= 0 {
		c.ReplayPage = 500
	}
	if c.ReplayWait <= 0 {
		c.ReplayWait = 5 * time.Second
	}
	if c.WriterShare <= 0 {
		c.WriterShare = 256
	}
	if c.MaxBadFrames <= 0 {
		c.MaxBadFrames = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Hub holds this node's realtime connections and the per-account streams
// that feed them.
type Hub struct {
	cfg   Config
	store *models.Store
	bus   Bus
	log   *slog.Logger
	now   func() time.Time

	// stop ends every stream and connection at shutdown.
	stop     chan struct{}
	stopOnce sync.Once
	// ready lists the connections with frames to write; a few workers
	// serve it.
	ready *readyQueue

	mu      sync.Mutex
	streams map[string]*stream
	clients map[*Client]struct{}
	closed  bool
	wg      sync.WaitGroup
	writers sync.WaitGroup
	unsubs  []func()
}

// NewHub builds a hub on the bus and starts its pinger.
func NewHub(cfg Config, store *models.Store, b Bus) *Hub {
	cfg.setDefaults()
	h := &Hub{
		cfg:     cfg,
		store:   store,
		bus:     b,
		log:     cfg.Logger,
		now:     func() time.Time { return time.Now().UTC() },
		stop:    make(chan struct{}),
		streams: map[string]*stream{},
		clients: map[*Client]struct{}{},
		ready:   newReadyQueue(),
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.pingLoop()
	}()
	if err := h.watchGrants(); err != nil {
		h.log.Error("watch staff grant revocations", "error", err.Error())
	}
	if err := h.watchCredentials(); err != nil {
		h.log.Error("watch ended sessions and revoked keys", "error", err.Error())
	}
	for range max(2, 2*runtime.GOMAXPROCS(0)) {
		h.writers.Add(1)
		go func() {
			defer h.writers.Done()
			h.writeWorker()
		}()
	}
	return h
}

// pingLoop asks every connection's writer to ping its client each interval;
// a client that stops answering misses its pong deadline and is dropped.
func (h *Hub) pingLoop() {
	tick := time.NewTicker(h.cfg.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		for c := range h.clients {
			c.sendPing()
		}
		h.mu.Unlock()
	}
}

// Serve runs one authenticated connection until it closes.
func (h *Hub) Serve(ctx context.Context, conn *wsframe.Conn, v Viewer) {
	c := &Client{
		hub:       h,
		conn:      conn,
		viewer:    v,
		closing:   make(chan struct{}),
		writeDone: make(chan struct{}),
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		Reject(conn, wsframe.CloseGoingAway, "server shutting down")
		return
	}
	h.clients[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
		h.wg.Done()
	}()
	c.serve(ctx)
}

// Reject closes a connection at once with a close code, for an upgrade
// whose credentials failed: a browser cannot read an HTTP status from a
// failed WebSocket, but it can read the close code.
func Reject(conn *wsframe.Conn, code int, text string) {
	_ = conn.Write(wsframe.CloseFrame(code, text), time.Now().Add(time.Second))
	_ = conn.Close()
}

// acquire returns the account's stream, starting it for the first client.
func (h *Hub) acquire(ctx context.Context, accountID string) (*stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.streams[accountID]; ok {
		s.refs++
		return s, nil
	}
	s := newStream(h, accountID)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	s.refs = 1
	h.streams[accountID] = s
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s.run()
	}()
	return s, nil
}

// release drops a client's hold on a stream and reports whether it was the
// last, in which case the stream stops.
func (h *Hub) release(s *stream) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return false
	}
	delete(h.streams, s.accountID)
	return true
}

// canWatch reports whether v may watch an account other than its own:
// support staff with a grant, read-only. until is when that access ends,
// the grant's expiry; zero when it does not end on its own.
func (h *Hub) canWatch(ctx context.Context, v Viewer, accountID string) (ok bool, until time.Time, err error) {
	if v.AccountID == accountID {
		return true, time.Time{}, nil
	}
	if v.Role != models.RoleSupport {
		return false, time.Time{}, nil
	}
	g, ok, err := h.store.ActiveStaffGrant(ctx, v.LoginID, accountID, h.now())
	if err != nil || !ok {
		return false, time.Time{}, err
	}
	if g.ExpiresAt != nil {
		until = *g.ExpiresAt
	}
	return true, until, nil
}

// resumeExpired reports whether the events after offset after are no
// longer all kept, and the newest offset to start again from.
func (h *Hub) resumeExpired(ctx context.Context, accountID string, after int64) (bool, int64, error) {
	newest, err := h.store.LastEventOffset(ctx, accountID)
	if err != nil {
		return false, 0, err
	}
	if after > newest {
		// An offset from the future: the client saw another log.
		return true, newest, nil
	}
	oldest, ok, err := h.store.OldestEventOffset(ctx, accountID)
	if err != nil {
		return false, 0, err
	}
	if !ok {
		return after < newest, newest, nil
	}
	return after+1 < oldest, newest, nil
}

// ConnectionCount is how many realtime connections this node holds.
func (h *Hub) ConnectionCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Close ends every connection with 1001 (going away) and every stream,
// and waits for them.
func (h *Hub) Close(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	for c := range h.clients {
		c.shutdown(wsframe.CloseGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	// Connections close first, so their goodbye frames go out; then the
	// streams stop.
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for h.ConnectionCount() > 0 {
		select {
		case <-ctx.Done():
		case <-deadline.C:
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	h.stopOnce.Do(func() { close(h.stop) })
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("realtime connections still closing at shutdown deadline")
	}
	h.ready.stop()
	h.writers.Wait()
	for _, unsubscribe := range h.unsubs {
		unsubscribe()
	}
}

// watchGrants closes, with 4003, the connections of a support login
// watching an account whose grant was revoked.
func (h *Hub) watchGrants() error {
	unsubscribe, err := h.bus.SubscribeGrantRevoked(func(g bus.GrantRevoked) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for c := range h.clients {
			c.mu.Lock()
			watching := c.stream != nil && c.stream.accountID == g.AccountID
			c.mu.Unlock()
			if c.viewer.LoginID == g.LoginID && watching && c.viewer.AccountID != g.AccountID {
				c.shutdown(CloseForbidden, "access to the account was revoked")
			}
		}
	})
	if err != nil {
		return err
	}
	h.unsubs = append(h.unsubs, unsubscribe)
	return nil
}

// watchCredentials closes, with 4001, connections whose session ended,
// whose API key was revoked or whose login can no longer sign in: access
// ends at once, not when the token would expire.
func (h *Hub) watchCredentials() error {
	unsubscribe, err := h.bus.SubscribeCredentialEnded(func(ended bus.CredentialEnded) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for c := range h.clients {
			switch {
			case ended.SessionID != "" && c.viewer.SessionID == ended.SessionID:
				c.shutdown(CloseUnauthorized, "the session has ended: sign in again")
			case ended.APIKeyID != "" && c.viewer.APIKeyID == ended.APIKeyID:
				c.shutdown(CloseUnauthorized, "the API key was revoked")
			case ended.LoginID != "" && c.viewer.LoginID == ended.LoginID:
				c.shutdown(CloseUnauthorized, "the login can no longer sign in")
			}
		}
	})
	if err != nil {
		return err
	}
	h.unsubs = append(h.unsubs, unsubscribe)
	return nil
}
