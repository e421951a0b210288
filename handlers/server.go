package handlers

import (
	"errors"
	"net"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/panelsync/panelsync/models"
)

// guardServer wraps the HTTP server's own handlers. What the server
// answers before any route runs (a request it could not read, a method no
// route takes) goes through the same observer as every routed request, so
// it gets a problem document, a request id, a log line and a count like
// any other answer; and every answer, routed or not, gets secureHeaders.
func guardServer(app *fiber.App, obs observer) {
	srv := app.Server()
	headerLimit := app.Config().ReadBufferSize
	methods := app.Config().RequestMethods
	route := srv.Handler
	srv.Handler = func(fctx *fasthttp.RequestCtx) {
		// Fiber answers a method it does not know with a bare 400 before
		// any middleware runs. RFC 9110 (section 9.1) asks for 501: the
		// method is not one this server implements on any path, which is
		// what tells it apart from a 405 for a known method on the wrong
		// path.
		if knownMethod(methods, fctx.Method()) {
			route(fctx)
		} else {
			answerUnrouted(app, obs, fctx, models.Errorf(models.CodeNotImplemented,
				"this server implements no %.32q method", fctx.Method()))
		}
		// Set last, so that no handler (nor a library that resets the
		// response, as the WebSocket upgrader does on a refusal) can
		// drop them.
		secureHeaders(&fctx.Response.Header)
	}
	srv.ErrorHandler = func(fctx *fasthttp.RequestCtx, err error) {
		// The server closes the connection after this answer, with the
		// rest of the request possibly still arriving: a listener that can
		// drain it keeps the client from seeing a reset instead.
		if l, ok := fctx.Conn().(lingerer); ok {
			l.LingerOnClose()
		}
		answerUnrouted(app, obs, fctx, readError(err, headerLimit))
		secureHeaders(&fctx.Response.Header)
	}
}

// secureHeaders are on every answer. nosniff keeps a browser from running
// a JSON or text answer as a script or page; no-referrer keeps the URLs of
// the docs page and of anything linked from it out of other sites' logs;
// and no page of this server may be framed by another site (clickjacking),
// by the old header and by CSP. A route that sets its own CSP header must
// include frame-ancestors itself.
func secureHeaders(h *fasthttp.ResponseHeader) {
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	if len(h.Peek(fiber.HeaderContentSecurityPolicy)) == 0 {
		h.Set(fiber.HeaderContentSecurityPolicy, "frame-ancestors 'none'")
	}
}

// lingerer is a connection that can read and discard what the client is
// still sending before it closes.
type lingerer interface {
	LingerOnClose()
}

func knownMethod(methods []string, method []byte) bool {
	for _, m := range methods {
		if string(method) == m {
			return true
		}
	}
	return false
}

// answerUnrouted answers a request that no route takes with err.
func answerUnrouted(app *fiber.App, obs observer, fctx *fasthttp.RequestCtx, err error) {
	c := app.AcquireCtx(fctx)
	defer app.ReleaseCtx(c)
	c.Locals(unmatchedKey, true)
	obs.observe(c, func() error { return err })
}

// readError says why the HTTP server could not read a request. These are
// the client's doing, so none of them is an internal error; fasthttp
// closes the connection after the answer.
func readError(err error, headerLimit int) error {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return models.Errorf(models.CodeRequestHeaderFieldsTooLarge,
			"the request line and headers together are larger than the %d bytes this server accepts", headerLimit)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return models.Errorf(models.CodePayloadTooLarge, "request body is larger than this server accepts")
	case errors.As(err, &netErr) && netErr.Timeout():
		return models.Errorf(models.CodeInvalidRequest, "the request did not arrive in time")
	}
	return models.Errorf(models.CodeInvalidRequest, "the request is not valid HTTP/1.1")
}
