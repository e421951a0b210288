package handlers_test

import (
	"net/http"
	"strings"
	"testing"

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
