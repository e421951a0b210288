package handlers

import (
	"errors"
	"sync"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/wsframe"
)

// newUpgrader returns the upgrader of the WebSocket routes. The library
// answers the handshake only; the socket is then read and written with
// wsframe, so its buffers are kept minimal. The frames are gobwas/ws's, but
// its upgraders cannot answer here: ws.Upgrader parses the request from
// the socket, which fasthttp has already read and parsed, and
// ws.UpgradeHTTP needs net/http.
func newUpgrader() *fastws.FastHTTPUpgrader {
	return &fastws.FastHTTPUpgrader{
		ReadBufferSize:  128,
		WriteBufferSize: 128,
		WriteBufferPool: &sync.Pool{},
		// Clients authenticate with a token, a ticket or a device
		// credential, never a cookie, so a page on another origin gains
		// nothing by connecting.
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
		// A refused handshake is answered by the error handler, as a
		// problem document, rather than by the library in plain text.
		Error: func(*fasthttp.RequestCtx, int, error) {},
	}
}

// upgrade answers the handshake and hands serve the socket, taken over
// from the HTTP server, with messages bounded by limit. serve runs on the
// handshake's own goroutine and must return soon, starting a goroutine of
// its own for the connection's life, so that the HTTP server releases the
// request's state and read buffer (it keeps hijacked connections open).
// A handshake the upgrader refuses (a wrong WebSocket version, a missing
// key) is the client's mistake, answered as any bad request.
func upgrade(c *fiber.Ctx, u *fastws.FastHTTPUpgrader, limit int, serve func(*wsframe.Conn)) error {
	err := u.Upgrade(c.Context(), func(ws *fastws.Conn) {
		conn, err := wsframe.TakeOver(ws.NetConn(), limit)
		if err != nil {
			_ = ws.NetConn().Close()
			return
		}
		serve(conn)
	})
	var refused fastws.HandshakeError
	if errors.As(err, &refused) {
		return models.Errorf(models.CodeInvalidRequest, "%s", refused.Error())
	}
	return err
}
