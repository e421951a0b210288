package api_test

import (
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app"
)

// fiberParam is a path parameter as Fiber writes it (:id); OpenAPI writes
// the same parameter as {id}.
var fiberParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// registeredRoutes builds a node as the server does (SQLite in a temporary
// data folder) and returns every route its router registers, as
// "METHOD /path" in OpenAPI's spelling. HEAD twins of GET routes,
// middleware and the catch-all that answers 404 are left out.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.LogLevel = "error"
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start a node: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close the node: %v", err)
		}
	})

	routes := map[string]bool{}
	for _, r := range a.HTTP().GetRoutes(true) {
		if r.Method == http.MethodHead || r.Method == "USE" {
			continue
		}
		// The console's files are one route whose last segment is a path
		// (/app/js/main.js), documented as /app/{path}.
		path := r.Path
		if strings.HasSuffix(path, "/*") {
			path = strings.TrimSuffix(path, "*") + "{path}"
		}
		if strings.ContainsAny(path, "*+?") {
			t.Errorf("%s %s has a wildcard or optional parameter, which this test cannot match to a documented path", r.Method, r.Path)
			continue
		}
		routes[r.Method+" "+fiberParam.ReplaceAllString(path, "{$1}")] = true
	}
	if len(routes) == 0 {
		t.Fatal("the router registers no route; the walk is broken")
	}
	return routes
}

// TestOpenAPI_DocumentsExactlyTheRoutesTheRouterServes asks the router
// itself, so that a route cannot ship undocumented and the document cannot
// describe a route the server no longer answers.
func TestOpenAPI_DocumentsExactlyTheRoutesTheRouterServes(t *testing.T) {
	documented := map[string]bool{}
	for _, o := range operations(t, loadDocument(t)) {
		documented[o.method+" "+o.path] = true
	}
	registered := registeredRoutes(t)

	var undocumented, unserved []string
	for route := range registered {
		if !documented[route] {
			undocumented = append(undocumented, route)
		}
	}
	for route := range documented {
		if !registered[route] {
			unserved = append(unserved, route)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unserved)
	for _, route := range undocumented {
		t.Errorf("the router serves %s, which openapi.yaml does not describe", route)
	}
	for _, route := range unserved {
		t.Errorf("openapi.yaml describes %s, which the router does not serve", route)
	}
}
