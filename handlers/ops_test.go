package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestOpsEndpoints_AnswerWithoutAuth(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	cases := []struct {
		path, contentType, contains string
	}{
		{"/healthz", "application/json", `"status":"ok"`},
		{"/readyz", "application/json", `"migrations":"ok"`},
		{"/openapi.yaml", "application/yaml", "openapi: 3.1"},
		{"/docs", "text/html", "/docs/assets/redoc.standalone.js"},
		{"/docs/assets/redoc.standalone.js", "text/javascript", "Redoc"},
	}
	for _, tc := range cases {
		r := tb.do(t, "GET", tc.path, "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), tc.contentType) || !strings.Contains(string(r.body), tc.contains) {
			t.Errorf("%s: %d %q, body lacks %q", tc.path, r.status, r.header.Get("Content-Type"), tc.contains)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", tc.path)
		}
	}
	if r := tb.do(t, "GET", "/docs/assets/..%2Fdocs.html", "", nil); r.status != http.StatusNotFound {
		t.Errorf("asset path escape: %d", r.status)
	}
	// Metrics have a listener of their own (see app's tests).
	if r := tb.do(t, "GET", "/metrics", "", nil); r.status != http.StatusNotFound || r.problem(t).Code != "not_found" {
		t.Errorf("/metrics on the API listener: %d %s", r.status, r.body)
	}
}

func TestReadyz_DatabaseGone_Answers503WithoutDetail(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	if err := tb.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := tb.do(t, "GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"database":"failing"`) {
		t.Fatalf("readyz with the database closed: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "sql") {
		t.Fatalf("readyz leaks driver detail: %s", r.body)
	}
}

func TestRoutes_DatabaseGone_Answer503WithRetryAfter(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	tb.login(t, tb.acctA, "owner@gone.test", models.RoleOwner)
	owner := tb.signIn(t, "owner@gone.test").AccessToken
	if err := tb.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, route := range []struct{ method, path string }{
		{"GET", "/v1/locations"},
		{"GET", "/v1/me"},
		{"POST", "/v1/auth/login"},
	} {
		var body any
		if route.path == "/v1/auth/login" {
			body = map[string]string{"email": "owner@gone.test", "password": testPassword}
		}
		r := tb.do(t, route.method, route.path, owner, body)
		p := r.problem(t)
		if r.status != http.StatusServiceUnavailable || p.Code != "service_unavailable" || r.header.Get("Retry-After") != "5" {
			t.Errorf("%s %s with the database closed: %d %q Retry-After %q", route.method, route.path, r.status, p.Code, r.header.Get("Retry-After"))
		}
		if strings.Contains(string(r.body), "sql") {
			t.Errorf("%s %s leaks driver detail: %s", route.method, route.path, r.body)
		}
	}
}
