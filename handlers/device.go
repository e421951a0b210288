package handlers

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// DeviceLink is the device side of the panel link.
type DeviceLink interface {
	Authenticate(ctx context.Context, serial, secret string) (models.Panel, error)
	Serve(ctx context.Context, p models.Panel, sock panel.Socket)
	RotateCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, string, error)
	RevokeCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, error)
}

type deviceHandlers struct {
	link       DeviceLink
	background context.Context
}

const panelLocal = "device-panel"

// authenticate checks the panel's Basic credentials before the upgrade, so
// a wrong secret never gets a socket and changes nothing.
func (h deviceHandlers) authenticate(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return models.Errorf(models.CodeInvalidRequest, "this endpoint only accepts a WebSocket upgrade")
	}
	serial, secret, ok := basicCredentials(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return models.Errorf(models.CodeUnauthorized, "panels authenticate with HTTP Basic: serial and device secret")
	}
	p, err := h.link.Authenticate(c.UserContext(), serial, secret)
	if err != nil {
		if models.ErrorCode(err) == models.CodePanelAuthorizationExpired {
			// For the device this is a refusal like any other; the
			// location shows authorization_expired to its people.
			return models.Errorf(models.CodeUnauthorized, "the device credential has expired or was revoked")
		}
		return err
	}
	c.Locals(panelLocal, p)
	return c.Next()
}

func (h deviceHandlers) serve(c *websocket.Conn) {
	p, ok := c.Locals(panelLocal).(models.Panel)
	if !ok {
		_ = c.Close()
		return
	}
	h.link.Serve(h.background, p, c.Conn)
}

func basicCredentials(header string) (user, password string, ok bool) {
	scheme, encoded, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	return user, password, ok && user != "" && password != ""
}

func deviceRoute(app *fiber.App, h deviceHandlers) {
	app.Get("/device/v1/link", h.authenticate, websocket.New(h.serve, websocket.Config{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
	}))
}
