package handlers

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// ParseOrigins reads a comma-separated list of origins allowed to call the
// API from a browser: each scheme://host[:port], as a browser sends it in
// Origin, compared exactly. Scheme and host are lower-cased and a default
// port dropped, since a browser writes them so. A wildcard is refused: the
// list names every site it trusts. An empty list allows none.
func ParseOrigins(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var origins []string
	for _, raw := range strings.Split(list, ",") {
		o, err := parseOrigin(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return origins, nil
}

func parseOrigin(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("an origin in the list is empty")
	}
	if strings.Contains(s, "*") {
		return "", fmt.Errorf("%q: wildcards are not accepted; list each origin", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an origin: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("%q: an origin starts with http:// or https://", s)
	case u.Host == "" || u.Hostname() == "" || u.User != nil:
		return "", fmt.Errorf("%q: an origin is scheme://host[:port]", s)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "", fmt.Errorf("%q: an origin has no path, query or fragment (not even a trailing /)", s)
	}
	host := strings.ToLower(u.Host)
	if (scheme == "https" && u.Port() == "443") || (scheme == "http" && u.Port() == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return scheme + "://" + host, nil
}

// CORS answers, for the listed origins only: the API is called with a
// bearer token, never a cookie, so credentials are never allowed and the
// answer never carries a wildcard.
const (
	corsAllowMethods  = "GET, HEAD, POST, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, X-Request-Id, X-Account-Id"
	corsExposeHeaders = "X-Request-Id, Retry-After, Location, WWW-Authenticate, Content-Disposition"
	// corsMaxAge is how long, in seconds, a browser may reuse a preflight.
	corsMaxAge = "3600"
)

// allowOrigins lets pages of the given origins call the API. A request
// from any other origin gets no CORS header at all, a preflight included,
// so the browser refuses it. Fiber's cors middleware does not fit: it
// answers a preflight from an origin not on its list with the allowed
// methods and headers, only without Access-Control-Allow-Origin.
func allowOrigins(origins []string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Every answer depends on Origin, whether it grants access or not,
		// so that a cache never serves one origin's answer to another.
		c.Vary(fiber.HeaderOrigin)
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" || !slices.Contains(origins, origin) {
			return c.Next()
		}
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			c.Vary(fiber.HeaderAccessControlRequestMethod, fiber.HeaderAccessControlRequestHeaders)
			c.Set(fiber.HeaderAccessControlAllowMethods, corsAllowMethods)
			c.Set(fiber.HeaderAccessControlAllowHeaders, corsAllowHeaders)
			c.Set(fiber.HeaderAccessControlMaxAge, corsMaxAge)
			return c.SendStatus(fiber.StatusNoContent)
		}
		c.Set(fiber.HeaderAccessControlExposeHeaders, corsExposeHeaders)
		return c.Next()
	}
}
