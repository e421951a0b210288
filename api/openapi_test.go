package api_test

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/panelsync/panelsync/api"
)

// loadDocument parses the embedded document into plain maps and slices,
// the shape that the checks below walk.
func loadDocument(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	return doc
}

// mapAt returns the mapping at key in m, failing the test when it is
// missing or not a mapping.
func mapAt(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%q is missing or not a mapping", key)
	}
	return v
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operation is one method on one path of the document.
type operation struct {
	method, path string
	op           map[string]any
}

func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	var ops []operation
	for path, item := range mapAt(t, doc, "paths") {
		pi, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("path %s is not a mapping", path)
		}
		for _, m := range httpMethods {
			if op, ok := pi[m].(map[string]any); ok {
				ops = append(ops, operation{method: strings.ToUpper(m), path: path, op: op})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return ops[i].method < ops[j].method
	})
	return ops
}

func TestOpenAPI_IsAnOpenAPI31Document(t *testing.T) {
	doc := loadDocument(t)

	version, _ := doc["openapi"].(string)
	if !strings.HasPrefix(version, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", version)
	}
	info := mapAt(t, doc, "info")
	for _, key := range []string{"title", "version", "description"} {
		if s, _ := info[key].(string); strings.TrimSpace(s) == "" {
			t.Errorf("info.%s is empty", key)
		}
	}
	if len(mapAt(t, doc, "paths")) == 0 {
		t.Fatal("paths is empty")
	}
	schemes := mapAt(t, mapAt(t, doc, "components"), "securitySchemes")
	if _, ok := schemes["bearer"]; !ok {
		t.Error("components.securitySchemes has no bearer scheme")
	}

	seenIDs := map[string]string{}
	for _, o := range operations(t, doc) {
		where := o.method + " " + o.path
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", where)
		} else if prev, dup := seenIDs[id]; dup {
			t.Errorf("%s reuses operationId %q of %s", where, id, prev)
		}
		seenIDs[id] = where
		if s, _ := o.op["summary"].(string); s == "" {
			t.Errorf("%s has no summary", where)
		}
		responses, _ := o.op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s documents no responses", where)
		}
		for status := range responses {
			if n, err := strconv.Atoi(status); err != nil || http.StatusText(n) == "" {
				t.Errorf("%s documents response %q, which is not an HTTP status", where, status)
			}
		}
	}
}

// TestOpenAPI_DescribesEveryRoute pins, for each route, the answers the
// document must list and whether it needs a token. Every documented
// operation needs a row here, and TestOpenAPI_DocumentsExactlyTheRoutesTheRouterServes
// holds the document to the router, so a route the server gains cannot
// ship without its statuses.
func TestOpenAPI_DescribesEveryRoute(t *testing.T) {
	doc := loadDocument(t)
	documented := map[string]map[string]any{}
	for _, o := range operations(t, doc) {
		documented[o.method+" "+o.path] = o.op
	}

	routes := []struct {
		route  string
		public bool
		// statuses are the answers the route must document.
		statuses []string
	}{
		{"GET /healthz", true, []string{"200"}},
		{"GET /readyz", true, []string{"200", "503"}},
		{"GET /openapi.yaml", true, []string{"200"}},
		{"GET /docs", true, []string{"200"}},
		{"GET /", true, []string{"200"}},
		{"GET /accept-invitation", true, []string{"200"}},
		{"GET /reset-password", true, []string{"200"}},
		{"GET /app/{path}", true, []string{"200", "304", "404"}},
		{"GET /docs/assets/{name}", true, []string{"200", "404"}},
		{"POST /v1/auth/login", true, []string{"200", "400", "401", "413", "415", "429", "500"}},
		{"POST /v1/auth/refresh", true, []string{"200", "400", "401", "413", "415", "500"}},
		{"POST /v1/auth/logout", false, []string{"204", "400", "401", "403", "500"}},
		{"POST /v1/auth/invitations/accept", true, []string{"200", "400", "413", "415", "500"}},
		{"POST /v1/auth/password", false, []string{"204", "400", "401", "403", "413", "415", "500"}},
		{"POST /v1/auth/password-reset", true, []string{"202", "400", "413", "415", "500"}},
		{"POST /v1/auth/password-reset/confirm", true, []string{"204", "400", "413", "415", "500"}},
		{"GET /v1/me", false, []string{"200", "400", "401", "403", "500"}},
		{"GET /v1/locations", false, []string{"200", "400", "401", "403", "500"}},
		{"POST /v1/locations", false, []string{"201", "400", "401", "403", "409", "413", "415", "500"}},
		{"GET /v1/locations/{id}", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"PATCH /v1/locations/{id}", false, []string{"200", "400", "401", "403", "404", "413", "415", "500"}},
		{"POST /v1/locations/{id}/sync", false, []string{"200", "202", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"POST /v1/locations/{id}/panel/credential", false, []string{"200", "401", "403", "404", "500"}},
		{"POST /v1/locations/{id}/panel/credential/revoke", false, []string{"200", "401", "403", "404", "500"}},
		{"GET /v1/locations/{id}/users", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/locations/{id}/panel", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/locations/{id}/status", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/people", false, []string{"200", "400", "401", "403", "500"}},
		{"GET /v1/runs", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/runs/{id}", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/runs/{id}/data", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"GET /v1/runs/{id}/changes", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"POST /v1/runs/{id}/cancel", false, []string{"200", "401", "403", "404", "409", "500"}},
		{"POST /v1/runs/{id}/apply", false, []string{"200", "401", "403", "404", "409", "500"}},
		{"POST /v1/runs/{id}/mark-cancelled", false, []string{"200", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"POST /v1/runs/{id}/reapply", false, []string{"202", "401", "403", "404", "409", "500"}},
		{"GET /v1/runs/{id}/control", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"POST /v1/imports", false, []string{"202", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"POST /v1/sync", false, []string{"202", "400", "401", "403", "404", "413", "415", "500"}},
		{"GET /v1/batches", false, []string{"200", "400", "401", "403", "500"}},
		{"GET /v1/batches/{id}", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"POST /v1/batches/{id}/cancel", false, []string{"200", "401", "403", "404", "409", "500"}},
		{"POST /v1/locations/{id}/force-sync", false, []string{"202", "401", "403", "404", "500"}},
		{"POST /v1/force-sync", false, []string{"202", "400", "401", "403", "404", "413", "415", "500"}},
		{"PUT /v1/groups/{name}/rank", false, []string{"200", "400", "401", "403", "404", "413", "415", "500"}},
		{"GET /v1/events", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"POST /v1/realtime/tickets", false, []string{"201", "401", "403", "500"}},
		// The realtime socket refuses credentials with a close code after
		// the upgrade, not with a 401: see TestOpenAPI_RealtimeRefusesWithCloseCodes.
		{"GET /v1/realtime", false, []string{"101", "400", "500"}},
		{"POST /v1/staff-grants", false, []string{"201", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"GET /v1/staff-grants", false, []string{"200", "400", "401", "403", "500"}},
		{"DELETE /v1/staff-grants/{id}", false, []string{"204", "401", "403", "404", "500"}},
		{"POST /v1/api-keys", false, []string{"201", "400", "401", "403", "409", "413", "415", "500"}},
		{"GET /v1/api-keys", false, []string{"200", "400", "401", "403", "500"}},
		{"GET /v1/api-keys/{id}", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"DELETE /v1/api-keys/{id}", false, []string{"204", "401", "403", "404", "500"}},
		{"GET /v1/logins", false, []string{"200", "400", "401", "403", "500"}},
		{"POST /v1/logins", false, []string{"201", "400", "401", "403", "409", "413", "415", "500"}},
		{"GET /v1/logins/{id}", false, []string{"200", "400", "401", "403", "404", "500"}},
		{"PATCH /v1/logins/{id}", false, []string{"200", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"POST /v1/logins/{id}/deactivate", false, []string{"200", "401", "403", "404", "409", "500"}},
		{"POST /v1/logins/{id}/reactivate", false, []string{"200", "401", "403", "404", "500"}},
		{"POST /v1/logins/{id}/invitation", false, []string{"202", "401", "403", "404", "409", "500"}},
		{"POST /v1/logins/{id}/force-sync", false, []string{"202", "401", "403", "404", "409", "500"}},
		{"POST /v1/links/load", false, []string{"202", "400", "401", "403", "404", "413", "415", "500"}},
		{"POST /v1/links/auto", false, []string{"200", "400", "401", "403", "404", "413", "415", "500"}},
		{"GET /v1/links", false, []string{"200", "400", "401", "403", "500"}},
		{"POST /v1/links", false, []string{"201", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"POST /v1/links/save", false, []string{"200", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"PATCH /v1/links/{id}", false, []string{"200", "400", "401", "403", "404", "409", "413", "415", "500"}},
		{"DELETE /v1/links/{id}", false, []string{"204", "401", "403", "404", "500"}},
		{"GET /v1/audit", false, []string{"200", "400", "401", "403", "500"}},
		// The panel link authenticates with HTTP Basic, not a token, so it
		// is not public either.
		{"GET /device/v1/link", false, []string{"101", "400", "401", "500"}},
	}
	listed := map[string]bool{}
	for _, r := range routes {
		listed[r.route] = true
		t.Run(r.route, func(t *testing.T) {
			op, ok := documented[r.route]
			if !ok {
				t.Fatalf("%s is not documented", r.route)
			}
			responses, _ := op["responses"].(map[string]any)
			for _, s := range r.statuses {
				if _, ok := responses[s]; !ok {
					t.Errorf("response %s is not documented", s)
				}
			}
			// An empty security list is how OpenAPI marks a route that
			// needs no token; every other route inherits the bearer scheme.
			security, declared := op["security"].([]any)
			public := declared && len(security) == 0
			if public != r.public {
				t.Errorf("documented as public = %v, want %v", public, r.public)
			}
		})
	}
	for route := range documented {
		if !listed[route] {
			t.Errorf("%s is documented but has no row here saying which answers it must list", route)
		}
	}
}

// TestOpenAPI_AuthenticatedReadsTakeTheAccountHeader checks that every GET
// route that takes a bearer token lists X-Account-Id, with which support
// staff read a customer's account, and documents the 403 it can answer.
// The realtime socket names the account in its subscribe frame instead.
func TestOpenAPI_AuthenticatedReadsTakeTheAccountHeader(t *testing.T) {
	const header = "#/components/parameters/AccountHeader"
	doc := loadDocument(t)
	if _, err := resolvePointer(doc, strings.TrimPrefix(header, "#")); err != nil {
		t.Fatalf("%s: %v", header, err)
	}
	for _, o := range operations(t, doc) {
		security, declared := o.op["security"].([]any)
		if o.method != "GET" || (declared && len(security) == 0) || o.path == "/v1/realtime" || o.path == "/device/v1/link" {
			continue
		}
		where := o.method + " " + o.path
		params, _ := o.op["parameters"].([]any)
		found := false
		for _, p := range params {
			if m, ok := p.(map[string]any); ok && m["$ref"] == header {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not list the X-Account-Id header", where)
		}
		if responses, _ := o.op["responses"].(map[string]any); responses["403"] == nil {
			t.Errorf("%s does not document the 403 that X-Account-Id can answer", where)
		}
	}
}

// TestOpenAPI_RealtimeRefusesWithCloseCodes pins what the realtime route
// promises clients that cannot read an HTTP status from a failed
// WebSocket: bad credentials are told by close code, never by a 401, and
// the frame protocol is described with its close codes and schemas.
func TestOpenAPI_RealtimeRefusesWithCloseCodes(t *testing.T) {
	doc := loadDocument(t)
	var op map[string]any
	for _, o := range operations(t, doc) {
		if o.method == "GET" && o.path == "/v1/realtime" {
			op = o.op
		}
	}
	if op == nil {
		t.Fatal("GET /v1/realtime is not documented")
	}
	responses, _ := op["responses"].(map[string]any)
	if _, ok := responses["401"]; ok {
		t.Error("GET /v1/realtime documents a 401; failed credentials close the socket with 4001 or 4010 instead")
	}
	description, _ := op["description"].(string)
	for _, want := range []string{"4001", "4003", "4008", "4010", "1001", "1008", "1009", "resume_expired", "`after`", "account_id", "PANELSYNC_EVENT_RETENTION"} {
		if !strings.Contains(description, want) {
			t.Errorf("GET /v1/realtime's description does not mention %s", want)
		}
	}
	schemas := mapAt(t, mapAt(t, doc, "components"), "schemas")
	for _, name := range []string{"RealtimeClientFrame", "RealtimeServerFrame"} {
		if _, ok := schemas[name]; !ok {
			t.Errorf("components.schemas has no %s", name)
		}
	}
}

func TestOpenAPI_EveryRefResolves(t *testing.T) {
	doc := loadDocument(t)
	var refs []string
	collectRefs(doc, &refs)
	if len(refs) == 0 {
		t.Fatal("the document has no $ref at all; the walk is broken")
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("$ref %q does not point into components", ref)
			continue
		}
		if _, err := resolvePointer(doc, strings.TrimPrefix(ref, "#")); err != nil {
			t.Errorf("$ref %q does not resolve: %v", ref, err)
		}
	}
}

// TestOpenAPI_UsesNoOpenAPI30Nullable guards against the 3.0 keyword,
// which 3.1 dropped in favour of a type list such as [string, "null"];
// renderers and generators for 3.1 ignore it silently.
func TestOpenAPI_UsesNoOpenAPI30Nullable(t *testing.T) {
	if strings.Contains(string(api.OpenAPI()), "nullable:") {
		t.Error(`openapi.yaml uses "nullable:"; write the type as [T, "null"] instead`)
	}
}

func TestOpenAPI_ReturnsACopy(t *testing.T) {
	first := api.OpenAPI()
	first[0] = 'X'
	if second := api.OpenAPI(); second[0] == 'X' {
		t.Error("changing the returned slice changed the embedded document")
	}
}

// collectRefs appends the value of every $ref found anywhere under v.
func collectRefs(v any, refs *[]string) {
	switch n := v.(type) {
	case map[string]any:
		for k, child := range n {
			if s, ok := child.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
				continue
			}
			collectRefs(child, refs)
		}
	case []any:
		for _, child := range n {
			collectRefs(child, refs)
		}
	}
}

// resolvePointer follows a JSON pointer (RFC 6901) such as
// /components/schemas/Problem through the parsed document.
func resolvePointer(doc map[string]any, pointer string) (any, error) {
	var cur any = doc
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is reached through a value that is not a mapping", token)
		}
		if cur, ok = m[token]; !ok {
			return nil, fmt.Errorf("no %q", token)
		}
	}
	return cur, nil
}
