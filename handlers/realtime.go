package handlers

import (
	"context"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/realtime"
)

type realtimeHandlers struct {
	auth       *auth.Service
	hub        *realtime.Hub
	background context.Context
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
	case err == nil:
		c.Locals(viewerLocal, realtime.Viewer{LoginID: p.LoginID, AccountID: p.AccountID, Role: p.Role, ExpiresAt: p.ExpiresAt})
	case auth.IsTokenExpired(err):
		c.Locals(rejectionLocal, rejection{realtime.CloseTokenExpired, "token expired"})
	case models.ErrorCode(err) == models.CodeUnauthorized:
		c.Locals(rejectionLocal, rejection{realtime.CloseUnauthorized, "unauthorized"})
	default:
		return err
	}
	return c.Next()
}

func (h realtimeHandlers) serve(c *websocket.Conn) {
	if r, ok := c.Locals(rejectionLocal).(rejection); ok {
		realtime.Reject(c.Conn, r.code, r.text)
		return
	}
	v, ok := c.Locals(viewerLocal).(realtime.Viewer)
	if !ok {
		realtime.Reject(c.Conn, realtime.CloseUnauthorized, "unauthorized")
		return
	}
	h.hub.Serve(h.background, c.Conn, v)
}

func realtimeRoutes(app *fiber.App, authed authedRoutes, h realtimeHandlers) {
	authed.add(fiber.MethodPost, "/realtime/tickets", h.ticket)
	app.Get("/v1/realtime", h.authenticate, websocket.New(h.serve, websocket.Config{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
	}))
}
