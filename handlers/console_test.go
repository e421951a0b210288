package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models/dbtest"
)

func TestConsole_ServesThePageUnderAStrictPolicy(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	for _, path := range []string{"/", "/accept-invitation", "/reset-password"} {
		r := tb.do(t, "GET", path, "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
		if !strings.Contains(string(r.body), `<script type="module" src="/app/js/main.js">`) {
			t.Errorf("%s does not load the console's script: %s", path, r.body)
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: policy allows inline code: %q", path, csp)
		}
	}
}

func TestConsole_FilesAreCompressedAndRevalidated(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	r := tb.do(t, "GET", "/app/js/main.js", "", nil, "Accept-Encoding", "gzip")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("main.js: %d %q", r.status, r.header.Get("Content-Type"))
	}
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("main.js is not compressed for a browser that accepts gzip: %v", r.header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(plain), "import") {
		t.Fatalf("main.js does not decompress to the script: %v %q", err, plain)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("main.js has no ETag")
	}
	again := tb.do(t, "GET", "/app/js/main.js", "", nil, "If-None-Match", etag)
	if again.status != http.StatusNotModified {
		t.Fatalf("a revalidation with the current ETag: %d", again.status)
	}
	plainResp := tb.do(t, "GET", "/app/app.css", "", nil)
	if plainResp.status != http.StatusOK || plainResp.header.Get("Content-Encoding") != "" || !strings.HasPrefix(plainResp.header.Get("Content-Type"), "text/css") {
		t.Fatalf("app.css without gzip: %d %v", plainResp.status, plainResp.header)
	}
}

func TestConsole_UnknownOrEscapingFileAnswers404(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	for _, path := range []string{"/app/nope.js", "/app/..%2F..%2Fgo.mod", "/app/index.html", "/app/", "/locations"} {
		r := tb.do(t, "GET", path, "", nil)
		if r.status != http.StatusNotFound || r.problem(t).Code != "not_found" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}
