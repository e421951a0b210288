package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/panelsync/panelsync/api"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/handlers"
	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/realtime"
	"github.com/panelsync/panelsync/syncer"
	"github.com/panelsync/panelsync/web"
)

// App is one running panelsync node.
type App struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	store  *models.Store
	auth   *auth.Service
	bus    *bus.Bus
	events *models.EventLog
	link   *panel.Link
	engine *syncer.Engine
	hub    *realtime.Hub
	http   *fiber.App
	// registry holds the node's metrics; metricsLn, once Listen opens it,
	// is where they are served.
	registry  *prometheus.Registry
	metricsLn net.Listener
	// background is the node's own loops (retention), waited for on close.
	background sync.WaitGroup

	// mail queues outgoing mail and sends it through the transport that
	// mailVia names; outbox is the transport's folder when mail is not
	// sent over SMTP.
	mail    *mail.Queue
	sealer  *auth.Sealer
	outbox  string
	mailVia string

	// base outlives requests: long-lived connections (panel links) run
	// under it, and it ends when the node stops.
	base       context.Context
	cancelBase context.CancelFunc
	closeOnce  sync.Once
	closeErr   error
}

// OpenStore connects to the configured database.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (*models.Store, error) {
	db, err := models.Open(ctx, models.DBConfig{
		MySQLDSN:        cfg.DatabaseURL,
		SQLitePath:      cfg.SQLitePath(),
		MaxOpenConns:    cfg.DBMaxOpenConns,
		MaxIdleConns:    cfg.DBMaxIdleConns,
		ConnMaxLifetime: cfg.DBConnMaxLifetime,
		Timeout:         cfg.DBTimeout,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.OnDatabaseOpen != nil {
		if err := cfg.OnDatabaseOpen(db); err != nil {
			if sqlDB, dbErr := db.DB(); dbErr == nil {
				_ = sqlDB.Close()
			}
			return nil, fmt.Errorf("prepare the database: %w", err)
		}
	}
	return models.NewStore(db).WithLogger(log), nil
}

// New builds every part of a node. Nothing listens until Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := cfg.signingKey()
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	codeKey, err := cfg.codeDigestKey()
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	a := &App{cfg: cfg, log: log, store: store, nodeID: cfg.nodeID()}
	a.base, a.cancelBase = context.WithCancel(context.WithoutCancel(ctx))
	if err := a.build(ctx, key, codeKey); err != nil {
		a.cancelBase()
		if a.bus != nil {
			a.bus.Close()
		}
		_ = store.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context, signingKey, codeKey []byte) error {
	if a.cfg.MigrateOnStart {
		if err := migrations.Up(ctx, a.store.DB()); err != nil {
			return err
		}
	}
	b, err := bus.Open(ctx, bus.Config{URL: a.cfg.NATSURL, Name: "panelsync " + a.nodeID, Logger: a.log})
	if err != nil {
		return err
	}
	a.bus = b
	a.registry = prometheus.NewRegistry()
	if err := a.buildMail(); err != nil {
		return err
	}
	authSvc, err := auth.NewService(a.store, auth.Config{
		SigningKey:              signingKey,
		AccessTTL:               a.cfg.AccessTokenTTL,
		RefreshTTL:              a.cfg.RefreshTokenTTL,
		BcryptCost:              a.cfg.BcryptCost,
		LoginPerMinutePerClient: a.cfg.LoginPerMinutePerClient,
		LoginPerMinutePerEmail:  a.cfg.LoginPerMinutePerEmail,
		LoginBurstPerClient:     int(a.cfg.LoginPerMinutePerClient),
		LoginBurstPerEmail:      int(a.cfg.LoginPerMinutePerEmail),
		LoginFreeFailures:       a.cfg.LoginFreeFailures,
		LoginBackoffMax:         a.cfg.LoginBackoffMax,
		Logger:                  a.log,
		SessionEnded: func(sessionID string) {
			if err := b.PublishSessionEnded(sessionID); err != nil {
				a.log.Warn("tell nodes a session ended", "error", err.Error())
			}
		},
		LoginEnded: func(loginID string) {
			if err := b.PublishLoginEnded(loginID); err != nil {
				a.log.Warn("tell nodes a login ended", "error", err.Error())
			}
		},
		Mailer:    a.mail,
		PublicURL: a.cfg.PublicURL,
	})
	if err != nil {
		return err
	}
	a.auth = authSvc

	a.events = models.NewEventLog(a.store, realtime.NewPublisher(b, a.log))
	// Validate has read the list already.
	ranks, _ := a.cfg.ranks()
	a.link, err = panel.NewLink(panel.LinkConfig{
		NodeID:          a.nodeID,
		CommandTimeout:  a.cfg.CommandTimeout,
		CheckinInterval: a.cfg.CheckinInterval,
		AdmitRate:       a.cfg.PanelLinkRate,
		RelinkSpread:    a.cfg.PanelRelinkSpread,
		Heartbeat:       a.cfg.NodeHeartbeat,
		Ranks:           models.FormatRanks(ranks),
		Metrics:         panel.NewMetrics(a.registry),
		Logger:          a.log,
	}, a.store, a.events, b)
	if err != nil {
		return err
	}
	a.engine = syncer.New(syncer.Config{
		Owner:          a.nodeID,
		Workers:        a.cfg.Workers,
		Lease:          a.cfg.RunLease,
		MaxAttempts:    a.cfg.MaxAttempts,
		RetryBase:      a.cfg.RetryBase,
		CommandTimeout: a.cfg.CommandTimeout,
		PerAccount:     a.cfg.AccountRuns,
		Ranks:          ranks,
		// A node's ranks stop counting as served when the panel link
		// counts the node lost: three heartbeats without one.
		RankCheck:       a.cfg.NodeHeartbeat,
		NodeLostAfter:   3 * a.cfg.NodeHeartbeat,
		ScheduleTick:    a.cfg.ScheduleTick,
		UserChangeDelay: a.cfg.UserChangeDelay,
		CodeKey:         codeKey,
		Sealer:          a.sealer,
		Mailer:          a.mail,
		Metrics:         syncer.NewMetrics(a.registry),
		Logger:          a.log,
	}, a.store, a.events, a.link, b.NewWaker())

	a.link.SetHandler(a.engine)
	a.hub = realtime.NewHub(realtime.Config{WriterShare: a.cfg.RealtimeWriterShare, Metrics: realtime.NewMetrics(a.registry), Logger: a.log}, a.store, b)

	origins, err := handlers.ParseOrigins(a.cfg.CORSOrigins)
	if err != nil {
		return err
	}
	readiness := []handlers.ReadinessCheck{
		{Name: "database", Check: func(ctx context.Context) error { return a.store.CheckWrite(ctx, a.nodeID) }},
		{Name: "migrations", Check: a.checkMigrations},
		{Name: "bus", Check: b.Ping},
	}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStrandedCollector(a.engine), newQueueCollector(a.base, a.store, a.log, ranks), newDependencyCollector(a.base, readiness),
		panel.ConnectedGauge(a.link), panel.OpeningGauge(a.link), realtime.ConnectionsGauge(a.hub))

	a.http = handlers.New(handlers.Deps{
		Logger:       a.log,
		Auth:         authSvc,
		Store:        a.store,
		Registry:     a.registry,
		BusAvailable: b.Available,
		Readiness:    readiness,
		Link:         a.link,
		Engine:       a.engine,
		Hub:          a.hub,
		GrantRevoked: func(loginID, accountID string) error {
			return b.PublishGrantRevoked(loginID, accountID)
		},
		KeyRevoked: func(keyID, _ string) error {
			return b.PublishAPIKeyRevoked(keyID)
		},
		Background:  a.base,
		OpenAPI:     api.OpenAPI(),
		DocsHTML:    web.DocsHTML(),
		DocsAsset:   web.Asset,
		Console:     web.Console(),
		BodyLimit:   a.cfg.BodyLimit,
		DBTimeout:   a.cfg.DBTimeout,
		ProxyHeader: a.cfg.ProxyHeader,
		CORSOrigins: origins,
	})
	return nil
}

func (a *App) checkMigrations(ctx context.Context) error {
	st, err := migrations.Status(ctx, a.store.DB())
	if err != nil {
		return err
	}
	if !st.Current() {
		return fmt.Errorf("%d of %d migrations applied; run panelsync migrate up", st.AppliedCount(), len(st.Migrations))
	}
	return nil
}

// Store returns the node's store, for seeding and tests.
func (a *App) Store() *models.Store { return a.store }

// Auth returns the node's sign-in service, for seeding and tests.
func (a *App) Auth() *auth.Service { return a.auth }

// HTTP returns the Fiber application, for tests through app.Test.
func (a *App) HTTP() *fiber.App { return a.http }

// Listen opens the configured address, and the metrics address when
// there is one. It is separate from Serve so that a caller learns the
// bound addresses (with port 0) before requests arrive.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	if err := a.listenMetrics(); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &boundedListener{Listener: ln}, nil
}

func (a *App) listenMetrics() error {
	addr := a.cfg.metricsAddr()
	if addr == "" || a.metricsLn != nil {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	a.metricsLn = ln
	return nil
}

// MetricsAddr is the address metrics are served at once Listen has run, or
// "" when they are served nowhere.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// serveMetrics serves /metrics on the metrics listener, when there is one,
// until the returned stop is called. The metrics have a listener of their
// own so that a deployment can expose the API without them: they reveal
// traffic by route and the process's internals, and need no token.
func (a *App) serveMetrics() (stop func() error, err error) {
	if err := a.listenMetrics(); err != nil {
		return nil, err
	}
	if a.metricsLn == nil {
		return func() error { return nil }, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(a.metricsLn) }()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		if served := <-done; !errors.Is(served, http.ErrServerClosed) {
			err = errors.Join(err, served)
		}
		return err
	}, nil
}

// socketSendBuffer caps each accepted connection's kernel send buffer.
// Left to autotuning it grows to megabytes, which across tens of thousands
// of WebSockets is memory without bound, and which a stalled client can
// sit on for a long time before the server notices it is not reading.
const socketSendBuffer = 256 << 10

// boundedListener applies socketSendBuffer to every connection it accepts,
// and keeps track of the accepted connections that have not yet sent a
// byte. Browsers and HTTP clients open spare connections ahead of need;
// the HTTP server, shutting down, waits for such a connection as for one
// reading a request, so a spare one nobody will use would hold a shutdown
// up until the server's read timeout. Closing the listener therefore closes them too: their clients have
// sent nothing, so nothing is lost, and a connection that has begun a
// request is left to finish it.
type boundedListener struct {
	net.Listener
	unused unusedConns
}

func (l *boundedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	_ = tcp.SetWriteBuffer(socketSendBuffer)
	sc := &serverConn{TCPConn: tcp, tracker: &l.unused}
	if !l.unused.add(sc) {
		// The listener closed while this connection was being accepted.
		_ = tcp.Close()
		return nil, net.ErrClosed
	}
	return sc, nil
}

// Close stops accepting and closes the connections that never sent a byte.
func (l *boundedListener) Close() error {
	err := l.Listener.Close()
	l.unused.closeAll()
	return err
}

// unusedConns is the set of accepted connections that have not yet sent a
// byte. A connection leaves it on its first byte or when it closes, so the
// set holds only connections open and idle since their accept.
type unusedConns struct {
	mu     sync.Mutex
	conns  map[*serverConn]struct{}
	closed bool
}

// add records c as unused, or reports false once closeAll has run.
func (u *unusedConns) add(c *serverConn) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if u.conns == nil {
		u.conns = make(map[*serverConn]struct{})
	}
	c.unused.Store(true)
	u.conns[c] = struct{}{}
	return true
}

func (u *unusedConns) forget(c *serverConn) {
	u.mu.Lock()
	delete(u.conns, c)
	u.mu.Unlock()
}

// closeAll closes every connection still unused, and every one added
// later. A connection whose first byte arrives at the same moment is
// either claimed here or by its Read, never both.
func (u *unusedConns) closeAll() {
	u.mu.Lock()
	conns := u.conns
	u.conns = nil
	u.closed = true
	u.mu.Unlock()
	for c := range conns {
		if c.unused.CompareAndSwap(true, false) {
			_ = c.TCPConn.Close()
		}
	}
}

// lingerTime bounds how long a refused request's unread rest is drained
// before its connection closes.
const lingerTime = 2 * time.Second

// serverConn is an accepted connection that can close gracefully after a
// refusal. When the HTTP server refuses a request it has not read to the
// end (headers or a body over the limit) and closes the connection, the
// kernel answers the bytes still arriving with a reset, and a client still
// sending its request sees "connection reset" instead of the answer. With
// LingerOnClose, Close first says it will send no more, then reads and
// discards what the client sends, so the answer is read.
type serverConn struct {
	*net.TCPConn
	linger atomic.Bool
	// unused is true from accept until the first byte arrives or the
	// connection closes; tracker holds the connection while it is.
	unused  atomic.Bool
	tracker *unusedConns
}

// Read marks the connection used on its first byte. After that it costs
// one atomic load per call.
func (c *serverConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 && c.unused.Load() && c.unused.CompareAndSwap(true, false) {
		c.tracker.forget(c)
	}
	return n, err
}

// LingerOnClose makes Close drain the client's unread bytes first.
func (c *serverConn) LingerOnClose() { c.linger.Store(true) }

func (c *serverConn) Close() error {
	if c.unused.CompareAndSwap(true, false) {
		c.tracker.forget(c)
	}
	if c.linger.Load() {
		_ = c.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.Copy(io.Discard, c.TCPConn)
	}
	return c.TCPConn.Close()
}

// Start sets the node's background work going: the sync workers, the
// Event Log's retention and the mail sender.
func (a *App) Start() error {
	if err := a.engine.Start(a.base); err != nil {
		return err
	}
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		a.retain(a.base)
	}()
	a.startMail()
	return nil
}

// readinessRowsKept is how long the readiness row of a node that stopped
// checking is kept.
const readinessRowsKept = 24 * time.Hour

// retain deletes Event Log entries older than the retention, expired
// realtime tickets and the readiness rows of nodes long stopped, every few
// minutes, in small batches so no delete holds locks for long.
func (a *App) retain(ctx context.Context) {
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		now := time.Now().UTC()
		for {
			n, err := a.store.DeleteEventsBefore(ctx, now.Add(-a.cfg.EventRetention), 1000)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("event retention", "error", err.Error())
				}
				break
			}
			if n < 1000 {
				break
			}
		}
		if _, err := a.store.DeleteExpiredRealtimeTickets(ctx, now); err != nil && ctx.Err() == nil {
			a.log.Warn("ticket cleanup", "error", err.Error())
		}
		if err := a.store.DeleteReadinessChecksBefore(ctx, now.Add(-readinessRowsKept)); err != nil && ctx.Err() == nil {
			a.log.Warn("readiness check cleanup", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Serve starts the node's workers and answers requests on ln until ctx
// ends, then stops everything in reverse order of start.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	stopMetrics, err := a.serveMetrics()
	if err != nil {
		_ = ln.Close()
		return errors.Join(err, a.Close())
	}
	if err := a.Start(); err != nil {
		_ = ln.Close()
		return errors.Join(err, stopMetrics(), a.Close())
	}
	a.log.Info("panelsync serving", "addr", ln.Addr().String(), "metrics", a.MetricsAddr(), "node", a.nodeID,
		"database", a.cfg.DatabaseLabel(), "bus", a.busLabel())
	served := make(chan error, 1)
	go func() { served <- a.http.Listener(ln) }()
	select {
	case err := <-served:
		return errors.Join(err, stopMetrics(), a.Close())
	case <-ctx.Done():
	}
	a.log.Info("panelsync shutting down")
	// Panel links are refused from now on (503 with Retry-After), so that
	// no panel links to a node on its way down only to be dropped.
	a.link.Drain()
	// The workers stop first, while the panel links, the bus and the
	// database are all up: a run they interrupt is handed back to the queue
	// for another node, rather than failing because this node's own
	// shutdown cut its panel's connection.
	a.engine.Stop()
	// WebSockets are hijacked from the HTTP server, which does not wait for
	// them: realtime clients (with 1001) and panel links (with 4010 and a
	// delay each, to link again) are closed first, while the database can
	// still record it.
	linkCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	a.hub.Close(linkCtx)
	a.link.Close(linkCtx)
	cancel()
	shutdownErr := a.http.ShutdownWithTimeout(a.cfg.ShutdownTimeout)
	// The server closes only the listeners it has begun to serve: a stop
	// that comes right after the start can find the listener not yet
	// registered, and the server would then accept on it for ever.
	// Closing it here ends the serving either way.
	_ = ln.Close()
	<-served
	return errors.Join(shutdownErr, stopMetrics(), a.Close())
}

func (a *App) busLabel() string {
	if a.bus.Embedded() {
		return "embedded nats"
	}
	return "external nats"
}

// Close stops the workers and releases what New opened, in reverse order.
// It is safe to call on a node that never served.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		// A metrics listener opened by Listen but never served is closed
		// here; a served one is already closed by its server's shutdown.
		if a.metricsLn != nil {
			_ = a.metricsLn.Close()
		}
		// Stopping the workers before the links close hands the runs
		// they interrupt back, as Serve does.
		a.engine.Stop()
		linkCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		a.hub.Close(linkCtx)
		a.link.Close(linkCtx)
		cancel()
		a.cancelBase()
		a.background.Wait()
		a.bus.Close()
		a.closeErr = a.store.Close()
	})
	return a.closeErr
}

// Events returns the node's Event Log writer.
func (a *App) Events() *models.EventLog { return a.events }

// Hub returns the node's realtime hub.
func (a *App) Hub() *realtime.Hub { return a.hub }

// Engine returns the node's sync engine.
func (a *App) Engine() *syncer.Engine { return a.engine }

// Link returns the node's device link.
func (a *App) Link() *panel.Link { return a.link }

// Bus returns the node's bus.
func (a *App) Bus() *bus.Bus { return a.bus }

// NodeID names this node.
func (a *App) NodeID() string { return a.nodeID }

// ShutdownGrace is how long tests and tools wait for a node to stop.
const ShutdownGrace = 5 * time.Second
