package handlers

import (
	"context"
	"io/fs"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/realtime"
	"github.com/panelsync/panelsync/syncer"
)

// ReadinessCheck names one dependency and how to check it.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps is everything the routes need, built once by app.
type Deps struct {
	Logger   *slog.Logger
	Auth     *auth.Service
	Store    *models.Store
	Registry *prometheus.Registry
	// BusAvailable says whether the bus between nodes can be used now (see
	// bus.Bus.Available); the routes that need it answer 503 when it
	// cannot.
	BusAvailable func(ctx context.Context) error
	// Readiness lists what /readyz checks.
	Readiness []ReadinessCheck
	// OpenAPI is the contract served at /openapi.yaml; DocsHTML renders it.
	OpenAPI  []byte
	DocsHTML []byte
	// Console is the web console's files, served at / and /app/; nil
	// serves no console.
	Console fs.FS
	// DocsAsset serves the docs page's scripts by name.
	DocsAsset func(name string) (body []byte, contentType string, ok bool)
	// BodyLimit caps request bodies in bytes.
	BodyLimit int
	// DBTimeout bounds each request's database work; zero is
	// models.DefaultTimeout.
	DBTimeout time.Duration
	// Link is the panel device link; Engine the sync engine.
	Link   DeviceLink
	Engine *syncer.Engine
	// Hub serves the realtime WebSocket.
	Hub *realtime.Hub
	// GrantRevoked closes a support login's live connections to an account.
	GrantRevoked func(loginID, accountID string) error
	// KeyRevoked, when set, is called after an API key is revoked (again
	// on a repeated revocation), to close the key's live connections.
	KeyRevoked func(keyID, accountID string) error
	// Background outlives requests: panel links run under it.
	Background context.Context
	// ProxyHeader, when set, is the header a trusted proxy puts the client
	// address in (such as X-Forwarded-For).
	ProxyHeader string
	// CORSOrigins are the origins whose pages may call the API (see
	// ParseOrigins); none allows no cross-origin access.
	CORSOrigins []string
}

// New builds the Fiber application with every route.
func New(d Deps) *fiber.App {
	log := d.Logger
	app := fiber.New(fiber.Config{
		AppName: "panelsync",
		// Uploads may be larger than any other body; limitBody holds every
		// other route to the configured limit.
		BodyLimit:             max(d.BodyLimit, importBodyLimit),
		ErrorHandler:          NewErrorHandler(log),
		DisableStartupMessage: true,
		// Strings taken from a request stay valid after the handler
		// returns, so nothing can read a buffer Fiber has reused.
		Immutable:    true,
		ProxyHeader:  d.ProxyHeader,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  120 * time.Second,
	})
	// WebSocket handlers close the sockets they take over themselves: the
	// realtime socket outlives the handler that upgraded it, so that the
	// HTTP server frees the request's state for the connection's life.
	app.Server().KeepHijackedConns = true
	obs := observer{log: log, metrics: newHTTPMetrics(d.Registry)}
	guardServer(app, obs)
	app.Use(obs.middleware)
	app.Use(recover.New())
	app.Use(limitBody(d.BodyLimit))
	app.Use(boundRequests(d.DBTimeout))
	if len(d.CORSOrigins) > 0 {
		app.Use(allowOrigins(d.CORSOrigins))
	}

	ops := opsHandlers{log: log, readiness: d.Readiness, openapi: d.OpenAPI, docs: d.DocsHTML, asset: d.DocsAsset}
	if d.Engine != nil {
		ops.stranded = d.Engine.Stranded
	}
	app.Get("/healthz", ops.healthz)
	app.Get("/readyz", ops.readyz)
	app.Get("/openapi.yaml", ops.openAPI)
	app.Get("/docs", ops.docsPage)
	app.Get("/docs/assets/:name", ops.docsAsset)

	if d.Console != nil {
		console, err := newConsoleHandlers(d.Console)
		if err != nil {
			// The console is embedded in the binary, so a file that cannot
			// be read is a broken build; the API still serves.
			log.Error("the web console is not served", "error", err)
		} else {
			console.routes(app)
		}
	}

	// Routes whose effect must cross to other nodes at once, or reach a
	// panel linked to any of them, answer 503 while the bus is down;
	// everything served from the database goes on answering.
	overBus := needsBus(d.BusAvailable)

	v1 := app.Group("/v1")
	ah := authHandlers{svc: d.Auth, store: d.Store}
	v1.Post("/auth/login", ah.login)
	v1.Post("/auth/refresh", ah.refresh)

	// Authentication is part of each route's chain rather than a prefix
	// middleware, so an unknown path answers 404 whoever asks.
	v1.Post("/auth/invitations/accept", ah.acceptInvitation)
	v1.Post("/auth/password-reset", ah.requestPasswordReset)
	v1.Post("/auth/password-reset/confirm", overBus, ah.confirmPasswordReset)
	authed := authedRoutes{router: v1, auth: authenticate(d.Auth, d.Store)}
	authed.add(fiber.MethodPost, "/auth/logout", overBus, ah.logout)
	authed.add(fiber.MethodPost, "/auth/password", overBus, ah.changePassword)
	authed.add(fiber.MethodGet, "/me", ah.me)

	loh := loginHandlers{auth: d.Auth, store: d.Store}
	authed.add(fiber.MethodGet, "/logins", requireAdmin, loh.list)
	authed.add(fiber.MethodPost, "/logins", requireAdmin, loh.invite)
	authed.add(fiber.MethodGet, "/logins/:id", requireAdmin, loh.get)
	authed.add(fiber.MethodPatch, "/logins/:id", requireAdmin, loh.update)
	authed.add(fiber.MethodPost, "/logins/:id/deactivate", requireAdmin, overBus, loh.deactivate)
	authed.add(fiber.MethodPost, "/logins/:id/reactivate", requireAdmin, loh.reactivate)
	authed.add(fiber.MethodPost, "/logins/:id/invitation", requireAdmin, loh.resendInvitation)

	lnh := linkHandlers{store: d.Store, engine: d.Engine}
	authed.add(fiber.MethodPost, "/logins/:id/force-sync", requireAdmin, lnh.forceSync)
	authed.add(fiber.MethodPost, "/links/load", requireAdmin, overBus, lnh.load)
	authed.add(fiber.MethodPost, "/links/auto", requireAdmin, lnh.auto)
	authed.add(fiber.MethodPost, "/links/save", requireAdmin, lnh.save)
	authed.add(fiber.MethodPost, "/links", requireAdmin, lnh.propose)
	authed.add(fiber.MethodGet, "/links", requireAdmin, lnh.list)
	authed.add(fiber.MethodPatch, "/links/:id", requireAdmin, lnh.options)
	authed.add(fiber.MethodDelete, "/links/:id", requireAdmin, lnh.remove)

	audh := auditHandlers{store: d.Store}
	authed.add(fiber.MethodGet, "/audit", requireAuditReader, audh.list)

	lh := locationHandlers{store: d.Store}
	authed.add(fiber.MethodGet, "/locations", lh.list)
	authed.add(fiber.MethodPost, "/locations", requireAdmin, lh.create)
	authed.add(fiber.MethodGet, "/locations/:id", lh.get)
	authed.add(fiber.MethodPatch, "/locations/:id", requireAdmin, lh.update)
	authed.add(fiber.MethodPut, "/groups/:name/rank", requireAdmin, lh.setGroupRank)

	sh := syncHandlers{store: d.Store, engine: d.Engine, link: d.Link}
	authed.add(fiber.MethodPost, "/locations/:id/sync", requireOperator, overBus, sh.requestSync)
	authed.add(fiber.MethodPost, "/locations/:id/panel/credential", requireAdmin, overBus, sh.rotateCredential)
	authed.add(fiber.MethodPost, "/locations/:id/panel/credential/revoke", requireAdmin, overBus, sh.revokeCredential)
	authed.add(fiber.MethodGet, "/runs", sh.listRuns)
	authed.add(fiber.MethodGet, "/runs/:id", sh.getRun)
	authed.add(fiber.MethodGet, "/runs/:id/data", sh.runData)
	authed.add(fiber.MethodGet, "/runs/:id/changes", sh.runChanges)
	authed.add(fiber.MethodPost, "/runs/:id/cancel", requireOperator, sh.cancelRun)
	authed.add(fiber.MethodPost, "/runs/:id/apply", requireAdmin, overBus, sh.applyRun)
	authed.add(fiber.MethodPost, "/runs/:id/mark-cancelled", requireAdmin, sh.markCancelled)
	authed.add(fiber.MethodPost, "/runs/:id/reapply", requireAdmin, overBus, sh.reapplyRun)
	authed.add(fiber.MethodGet, "/runs/:id/control", sh.runControl)

	ih := importHandlers{engine: d.Engine}
	authed.add(fiber.MethodPost, "/imports", requireImporter, ih.upload)

	bh := batchHandlers{engine: d.Engine}
	authed.add(fiber.MethodPost, "/sync", requireOperator, overBus, bh.start)
	authed.add(fiber.MethodGet, "/batches", bh.list)
	authed.add(fiber.MethodGet, "/batches/:id", bh.get)
	authed.add(fiber.MethodPost, "/batches/:id/cancel", requireOperator, bh.cancel)
	authed.add(fiber.MethodPost, "/locations/:id/force-sync", requireAdmin, bh.forceOne)
	authed.add(fiber.MethodPost, "/force-sync", requireAdmin, bh.forceScope)

	ph := panelHandlers{store: d.Store}
	authed.add(fiber.MethodGet, "/locations/:id/users", ph.users)
	authed.add(fiber.MethodGet, "/locations/:id/panel", ph.config)
	authed.add(fiber.MethodGet, "/locations/:id/status", ph.status)

	lkh := lookupHandlers{store: d.Store}
	authed.add(fiber.MethodGet, "/people", lkh.lookup)

	eh := eventHandlers{store: d.Store}
	authed.add(fiber.MethodGet, "/events", eh.list)

	st := staffHandlers{store: d.Store, revoked: d.GrantRevoked}
	authed.add(fiber.MethodPost, "/staff-grants", requireAdmin, st.grant)
	authed.add(fiber.MethodGet, "/staff-grants", requireAdmin, st.list)
	authed.add(fiber.MethodDelete, "/staff-grants/:id", requireAdmin, overBus, st.revoke)

	kh := apiKeyHandlers{auth: d.Auth, store: d.Store, revoked: d.KeyRevoked}
	authed.add(fiber.MethodPost, "/api-keys", requireAdmin, kh.create)
	authed.add(fiber.MethodGet, "/api-keys", requireAdmin, kh.list)
	authed.add(fiber.MethodGet, "/api-keys/:id", requireAdmin, kh.get)
	authed.add(fiber.MethodDelete, "/api-keys/:id", requireAdmin, overBus, kh.revoke)

	deviceRoute(app, deviceHandlers{link: d.Link, background: d.Background})
	realtimeRoutes(app, authed, overBus, realtimeHandlers{auth: d.Auth, hub: d.Hub, background: d.Background})

	app.Use(newRouteTable(app).unmatched)
	return app
}

// authedRoutes registers routes that need a signed-in caller.
type authedRoutes struct {
	router fiber.Router
	auth   fiber.Handler
}

// add registers the route; a GET route also answers HEAD, as Fiber's own
// Get does.
func (r authedRoutes) add(method, path string, chain ...fiber.Handler) {
	handlers := append([]fiber.Handler{r.auth}, chain...)
	r.router.Add(method, path, handlers...)
	if method == fiber.MethodGet {
		r.router.Add(fiber.MethodHead, path, handlers...)
	}
}
