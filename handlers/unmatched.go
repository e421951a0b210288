package handlers

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

// routeTable is every route of the app, for answering a request that none
// of them took: 405 with the methods its path takes, or 404 when no route
// has that path.
type routeTable struct {
	routes []fiber.Route
	cfg    fiber.Config
}

// newRouteTable records the routes app has so far; it is built once every
// route is registered.
func newRouteTable(app *fiber.App) routeTable {
	return routeTable{routes: app.GetRoutes(true), cfg: app.Config()}
}

// allowed lists the methods path takes, matched the way the router
// matches (parameters, case, a trailing slash), with OPTIONS, which the
// server answers for any path it has. It is empty for an unknown path.
func (t routeTable) allowed(path string) []string {
	if !t.cfg.StrictRouting && len(path) > 1 {
		path = strings.TrimRight(path, "/")
	}
	var methods []string
	for _, r := range t.routes {
		if !slices.Contains(methods, r.Method) && fiber.RoutePatternMatch(path, r.Path, t.cfg) {
			methods = append(methods, r.Method)
		}
	}
	if len(methods) == 0 {
		return nil
	}
	methods = append(methods, fiber.MethodOptions)
	slices.SortFunc(methods, func(a, b string) int { return methodRank(a) - methodRank(b) })
	return slices.Compact(methods)
}

// methodRank orders the methods of an Allow header.
func methodRank(method string) int {
	switch method {
	case fiber.MethodGet:
		return 0
	case fiber.MethodHead:
		return 1
	case fiber.MethodPost:
		return 2
	case fiber.MethodPut:
		return 3
	case fiber.MethodPatch:
		return 4
	case fiber.MethodDelete:
		return 5
	case fiber.MethodOptions:
		return 7
	}
	return 6
}

// unmatched answers a request no route took. OPTIONS on a known path is
// answered with its methods; any other method it does not take is 405.
func (t routeTable) unmatched(c *fiber.Ctx) error {
	c.Locals(unmatchedKey, true)
	allow := t.allowed(c.Path())
	if allow == nil {
		return models.Errorf(models.CodeNotFound, "no route for %s %s", c.Method(), c.Path())
	}
	c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
	if c.Method() == fiber.MethodOptions {
		return c.SendStatus(fiber.StatusNoContent)
	}
	return models.Errorf(models.CodeMethodNotAllowed, "%s does not take %s; it takes %s", c.Path(), c.Method(), strings.Join(allow, ", "))
}
