package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

// importTimePerMiB is the time an upload gets on top of the request bound
// for each MiB of its body: the file is parsed, checked and its codes
// sealed before its first database statement, and a large file must not
// spend the database's bound on that.
const importTimePerMiB = time.Second

// boundRequests puts a deadline of bound on each request's context, so
// that a database that froze or a network that drops its packets ends
// the request's wait, and with it the request, in about bound. Fiber does
// not stop a handler at a deadline: the handler's database calls end, and
// the handler returns what they returned. A handler error once the
// deadline has passed is the database being out of reach, answered 503
// service_unavailable with Retry-After, whatever driver or library error
// reported it. WebSocket connections run under the node's own context
// once upgraded, so the deadline bounds only the upgrade.
func boundRequests(bound time.Duration) fiber.Handler {
	if bound <= 0 {
		bound = models.DefaultTimeout
	}
	return func(c *fiber.Ctx) error {
		limit := bound
		if c.Method() == fiber.MethodPost && c.Path() == importPath {
			limit += time.Duration(len(c.Request().Body())) * importTimePerMiB / (1 << 20)
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), limit)
		defer cancel()
		c.SetUserContext(ctx)
		err := c.Next()
		var domain *models.Error
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.As(err, &domain) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %s: %w", context.DeadlineExceeded, limit, err)
		}
		return err
	}
}
