package handlers

import (
	"context"
	"encoding/base64"
	"strings"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/wsframe"
)

// DeviceLink is the device side of the panel link.
type DeviceLink interface {
	// Admit says whether the node takes a new link now: an error (503
	// with Retry-After) while it drains or while links arrive faster than
	// it takes them.
	Admit() error
	Authenticate(ctx context.Context, serial, secret string) (models.Panel, error)
	// Start opens the link and reads it on a goroutine of its own,
	// returning once the panel is greeted.
	Start(ctx context.Context, p models.Panel, sock panel.Socket) <-chan struct{}
	RotateCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, string, error)
	RevokeCredential(ctx context.Context, actor models.Actor, locationID string) (models.LocationView, error)
}

type deviceHandlers struct {
	link       DeviceLink
	background context.Context
	upgrader   *fastws.FastHTTPUpgrader
}

const panelLocal = "device-panel"

// loadShedLocal marks a request refused on purpose, 503 with Retry-After,
// because the node is taking links at its bounded rate or draining: its
// answer is logged at DEBUG rather than as a server error.
const loadShedLocal = "load-shed"

// loadShed reports whether the request was refused to shed load.
func loadShed(c *fiber.Ctx) bool {
	shed, _ := c.Locals(loadShedLocal).(bool)
	return shed
}

// authenticate checks the panel's Basic credentials before the upgrade, so
// a wrong secret never gets a socket and changes nothing.
func (h deviceHandlers) authenticate(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return models.Errorf(models.CodeInvalidRequest, "this endpoint only accepts a WebSocket upgrade")
	}
	// Admission comes before the credentials are checked: in a reconnect
	// storm, the authentication is what the node has too little time for.
	if err := h.link.Admit(); err != nil {
		// A link turned away to pace a reconnecting fleet is the node
		// working as meant: counted, not logged as a failure.
		c.Locals(loadShedLocal, true)
		return err
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

// upgrade answers the handshake and hands the socket to the link, taken
// over from the HTTP server so that the server's request state and
// buffers are released at once: a node holds its panels' links for days,
// by the ten thousand.
func (h deviceHandlers) upgrade(c *fiber.Ctx) error {
	p, ok := c.Locals(panelLocal).(models.Panel)
	if !ok {
		return models.Errorf(models.CodeUnauthorized, "panels authenticate with HTTP Basic: serial and device secret")
	}
	return upgrade(c, h.upgrader, panel.MaxFrameBytes, func(conn *wsframe.Conn) {
		// The link is read on a goroutine of its own, so that this one
		// returns and the HTTP server lets go of the request.
		h.link.Start(h.background, p, conn)
	})
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
	h.upgrader = newUpgrader()
	app.Get("/device/v1/link", h.authenticate, h.upgrade)
}
