package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/panelsync/panelsync/api"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/handlers"
	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/web"
)

// App is one running panelsync node.
type App struct {
	cfg   Config
	log   *slog.Logger
	store *models.Store
	auth  *auth.Service
	http  *fiber.App
}

// OpenStore connects to the configured database.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (*models.Store, error) {
	db, err := models.Open(ctx, models.DBConfig{
		MySQLDSN:        cfg.DatabaseURL,
		SQLitePath:      cfg.SQLitePath(),
		MaxOpenConns:    cfg.DBMaxOpenConns,
		MaxIdleConns:    cfg.DBMaxIdleConns,
		ConnMaxLifetime: cfg.DBConnMaxLifetime,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	return models.NewStore(db), nil
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
	a := &App{cfg: cfg, log: log, store: store}
	if err := a.build(ctx, key); err != nil {
		_ = store.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context, signingKey []byte) error {
	if a.cfg.MigrateOnStart {
		if err := migrations.Up(ctx, a.store.DB()); err != nil {
			return err
		}
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
	})
	if err != nil {
		return err
	}
	a.auth = authSvc

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.http = handlers.New(handlers.Deps{
		Logger:   a.log,
		Auth:     authSvc,
		Store:    a.store,
		Registry: registry,
		Readiness: []handlers.ReadinessCheck{
			{Name: "database", Check: a.store.Ping},
			{Name: "migrations", Check: a.checkMigrations},
		},
		OpenAPI:     api.OpenAPI(),
		DocsHTML:    web.DocsHTML(),
		DocsAsset:   web.Asset,
		BodyLimit:   a.cfg.BodyLimit,
		ProxyHeader: a.cfg.ProxyHeader,
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

// Listen opens the configured address. It is separate from Serve so that a
// caller learns the bound address (with port 0) before requests arrive.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends, then stops in reverse order
// of start: HTTP first (requests in flight finish), then the database.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	a.log.Info("panelsync serving", "addr", ln.Addr().String(), "database", a.cfg.DatabaseLabel())
	served := make(chan error, 1)
	go func() { served <- a.http.Listener(ln) }()
	select {
	case err := <-served:
		return errors.Join(err, a.Close())
	case <-ctx.Done():
	}
	a.log.Info("panelsync shutting down")
	shutdownErr := a.http.ShutdownWithTimeout(a.cfg.ShutdownTimeout)
	<-served
	return errors.Join(shutdownErr, a.Close())
}

// Close releases what New opened.
func (a *App) Close() error {
	return a.store.Close()
}

// ShutdownGrace is how long tests and tools wait for a node to stop.
const ShutdownGrace = 5 * time.Second
