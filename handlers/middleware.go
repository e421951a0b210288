package handlers

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type localKey int

const (
	requestIDKey localKey = iota
	principalKey
	// unmatchedKey marks a request answered without a route: by the
	// catch-all, or by the HTTP server itself.
	unmatchedKey
)

// requestIDHeader carries the request id both ways: a caller (a proxy) may
// set it, and every answer echoes it.
const requestIDHeader = "X-Request-Id"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// httpMetrics are the request counters served at /metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "panelsync_http_requests_total",
			Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "panelsync_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observer assigns the request id, answers errors through the error
// handler so the final status is known, and then logs and counts the
// request. The path is logged without its query, which may carry a ticket.
type observer struct {
	log     *slog.Logger
	metrics *httpMetrics
}

// middleware observes a request the router takes.
func (o observer) middleware(c *fiber.Ctx) error {
	o.observe(c, c.Next)
	return nil
}

// observe answers c with what next returns and records the answer.
func (o observer) observe(c *fiber.Ctx, next func() error) {
	start := time.Now()
	id := c.Get(requestIDHeader)
	if id == "" || len(id) > 64 {
		id = uuid.NewString()
	}
	c.Locals(requestIDKey, id)
	c.Set(requestIDHeader, id)
	c.SetUserContext(models.WithRequestID(c.UserContext(), id))

	if err := next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	// Requests no route took are counted under one label, so that made-up
	// paths cannot grow the metrics without bound.
	route := "unmatched"
	if unmatched, _ := c.Locals(unmatchedKey).(bool); !unmatched {
		route = c.Route().Path
	}
	elapsed := time.Since(start)
	o.metrics.requests.WithLabelValues(c.Method(), route, strconv.Itoa(status)).Inc()
	o.metrics.duration.WithLabelValues(c.Method(), route).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	switch {
	case loadShed(c):
		level = slog.LevelDebug
	case status >= 500:
		level = slog.LevelError
	}
	o.log.LogAttrs(c.UserContext(), level, "http request",
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("path", c.Path()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client_ip", c.IP()),
	)
}

// accountHeader names the customer account a support login acts on; it
// reaches that account only through a staff grant.
const accountHeader = "X-Account-Id"

// authenticate resolves the bearer token into a principal for the routes
// after it. A missing or bad token answers 401.
func authenticate(svc *auth.Service, store *models.Store) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, ok := bearerToken(c.Get(fiber.HeaderAuthorization))
		if !ok {
			return models.Errorf(models.CodeUnauthorized, "an Authorization: Bearer token is required")
		}
		p, err := svc.Authenticate(c.UserContext(), token)
		if err != nil {
			return err
		}
		if acct := c.Get(accountHeader); acct != "" && acct != p.AccountID {
			if p, err = actOnGrant(c.UserContext(), store, p, acct); err != nil {
				return err
			}
		}
		// Every read needs the read scope; routes that change something
		// check their own scope (requireOperator) or refuse keys outright
		// (requireAdmin).
		if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
			if err := requireScope(p, auth.ScopeRead); err != nil {
				return err
			}
		}
		c.Locals(principalKey, p)
		return c.Next()
	}
}

// actOnGrant lets a support login act on the customer account named by
// the X-Account-Id header, read-only, while its staff grant lasts. The
// grant is checked on every request, so revocation and expiry take effect
// at once.
func actOnGrant(ctx context.Context, store *models.Store, p auth.Principal, accountID string) (auth.Principal, error) {
	if p.IsAPIKey() || p.Role != models.RoleSupport {
		return auth.Principal{}, &models.Error{Code: models.CodeForbidden, Field: accountHeader,
			Message: "only support staff act on another account; leave X-Account-Id out or name your own account"}
	}
	ok, err := store.HasStaffGrant(ctx, p.LoginID, accountID, time.Now().UTC())
	if err != nil {
		return auth.Principal{}, err
	}
	if !ok {
		return auth.Principal{}, &models.Error{Code: models.CodeForbidden, Field: accountHeader,
			Message: "you have no staff grant for that account, or it has expired"}
	}
	p.HomeAccountID = p.AccountID
	p.AccountID = accountID
	return p, nil
}

// requireScope refuses an API key that lacks scope; a login passes, as its
// role decides what it may do.
func requireScope(p auth.Principal, scope auth.Scope) error {
	if p.IsAPIKey() && !p.Scopes.Has(scope) {
		return models.Errorf(models.CodeForbidden, "this API key lacks the %s scope", scope)
	}
	return nil
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// principal returns who the request acts as; authenticate has set it on
// every route that reaches a handler calling this.
func principal(c *fiber.Ctx) auth.Principal {
	p, _ := c.Locals(principalKey).(auth.Principal)
	return p
}

// actor returns the audit identity of the request.
func actor(c *fiber.Ctx) models.Actor {
	return principal(c).Actor(c.IP())
}

// trigger is what a run the request starts records as its trigger: "api"
// for an API key, "app" for a signed-in person.
func trigger(c *fiber.Ctx) models.RunTrigger {
	if principal(c).IsAPIKey() {
		return models.TriggerAPI
	}
	return models.TriggerApp
}

// requireAdmin refuses the request unless the caller may change settings.
// An API key never may, whatever its scopes.
func requireAdmin(c *fiber.Ctx) error {
	p := principal(c)
	if p.IsAPIKey() {
		return models.Errorf(models.CodeForbidden, "API keys cannot do this; it needs a signed-in owner or admin")
	}
	if !p.Role.CanAdminister() {
		return models.Errorf(models.CodeForbidden, "this action needs the owner or admin role")
	}
	return c.Next()
}

// requireAuditReader refuses the request unless the caller may read the
// audit log: an owner or admin of the account, or support staff under a
// grant. It names other people's e-mails and every admin change, so
// members and API keys do not read it.
func requireAuditReader(c *fiber.Ctx) error {
	p := principal(c)
	if p.IsAPIKey() {
		return models.Errorf(models.CodeForbidden, "API keys cannot read the audit log; it needs a signed-in owner, admin or support login")
	}
	if p.Role == models.RoleSupport && p.HomeAccountID == "" {
		return &models.Error{Code: models.CodeForbidden, Field: accountHeader,
			Message: "support staff read a customer's audit log under a staff grant: name the account in X-Account-Id"}
	}
	if !p.Role.CanAdminister() && p.Role != models.RoleSupport {
		return models.Errorf(models.CodeForbidden, "reading the audit log needs the owner, admin or support role")
	}
	return c.Next()
}

// requireOperator refuses the request unless the caller may start syncs;
// support staff only watch, and an API key needs the sync scope.
func requireOperator(c *fiber.Ctx) error {
	p := principal(c)
	if err := requireScope(p, auth.ScopeSync); err != nil {
		return err
	}
	if !p.Role.CanOperate() {
		return models.Errorf(models.CodeForbidden, "this action needs the owner, admin or member role")
	}
	return c.Next()
}

// needsBus answers 503 service_unavailable, before anything is changed,
// while available says the bus cannot be used: the route's effect must
// reach a panel linked to any node, or be told to every node at once (an
// ended session or a revoked key must close live connections everywhere,
// not only here). A nil available means the routes were built without a
// bus, as in tests of a single node's handlers.
func needsBus(available func(ctx context.Context) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if available != nil {
			if err := available(c.UserContext()); err != nil {
				return err
			}
		}
		return c.Next()
	}
}
