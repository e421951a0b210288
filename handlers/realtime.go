package handlers

import (
	"context"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/realtime"
	"github.com/panelsync/panelsync/wsframe"
)

type realtimeHandlers struct {
	auth       *auth.Service
	hub        *realtime.Hub
	background context.Context
	upgrader   *fastws.FastHTTPUpgrader
}

// TicketResponse answers a ticket request.
type TicketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

func (h realtimeHandlers) ticket(c *fiber.Ctx) error {
	ticket, ttl, err := h.auth.IssueRealtimeTicket(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(TicketResponse{Ticket: ticket, ExpiresIn: int(ttl.Seconds())})
}

const (
	viewerLocal    = "realtime-viewer"
	rejectionLocal = "realtime-rejection"
)

// rejection is why an upgrade's credentials failed; it is told to the
// client as a close code after the upgrade, which a browser can read.
type rejection struct {
	code int
	text string
}

// authenticate resolves the bearer token or ticket before the upgrade.
func (h realtimeHandlers) authenticate(c *fiber.Ctx) error {
	if err := allowQuery(c, "ticket"); err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return models.Errorf(models.CodeInvalidRequest, "this endpoint only accepts a WebSocket upgrade")
	}
	var (
		p   auth.Principal
		err error
	)
	if token, ok := bearerToken(c.Get(fiber.HeaderAuthorization)); ok {
		p, err = h.auth.Authenticate(c.UserContext(), token)
	} else if ticket := c.Query("ticket"); ticket != "" {
		p, err = h.auth.RedeemRealtimeTicket(c.UserContext(), ticket)
	} else {
		err = models.Errorf(models.CodeUnauthorized, "send Authorization: Bearer or ?ticket=")
	}
	switch {
	case err == nil && p.IsAPIKey() && !p.Scopes.Has(auth.ScopeRead):
		c.Locals(rejectionLocal, rejection{realtime.CloseForbidden, "the API key lacks the read scope"})
	case err == nil:
		c.Locals(viewerLocal, realtime.Viewer{
			LoginID: p.LoginID, SessionID: p.SessionID, APIKeyID: p.APIKeyID,
			AccountID: p.AccountID, Role: p.Role, ExpiresAt: p.ExpiresAt,
		})
	case auth.IsTokenExpired(err):
		c.Locals(rejectionLocal, rejection{realtime.CloseTokenExpired, "token expired"})
	case models.ErrorCode(err) == models.CodeUnauthorized:
		c.Locals(rejectionLocal, rejection{realtime.CloseUnauthorized, "unauthorized"})
	default:
		return err
	}
	return c.Next()
}

// upgrade answers the handshake and hands the socket to the hub. The
// upgrader is called directly rather than through a wrapper that copies
// every request's headers, cookies and query into maps kept for the
// connection's life: the hub needs only the viewer, and idle connections
// are counted by the ten thousand.
func (h realtimeHandlers) upgrade(c *fiber.Ctx) error {
	rej, rejected := c.Locals(rejectionLocal).(rejection)
	v, _ := c.Locals(viewerLocal).(realtime.Viewer)
	return upgrade(c, h.upgrader, realtime.MaxClientFrameBytes, func(conn *wsframe.Conn) {
		if rejected {
			realtime.Reject(conn, rej.code, rej.text)
			return
		}
		go h.hub.Serve(h.background, conn, v)
	})
}

func realtimeRoutes(app *fiber.App, authed authedRoutes, overBus fiber.Handler, h realtimeHandlers) {
	authed.add(fiber.MethodPost, "/realtime/tickets", overBus, h.ticket)
	h.upgrader = newUpgrader()
	app.Get("/v1/realtime", h.authenticate, overBus, h.upgrade)
}
