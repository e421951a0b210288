package handlers_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models/dbtest"
)

// getOverTCP sends a GET to the served node with the given extra header
// and returns the answer.
func getOverTCP(t *testing.T, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The error repeats the whole URL, which may be huge.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		t.Fatalf("GET %.80s…: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// TestOversizedRequestHead_Answers431Problem goes through a real socket:
// the HTTP server refuses a request line or headers larger than its read
// buffer before any route runs, which app.Test bypasses.
func TestOversizedRequestHead_Answers431Problem(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			var logs apptest.Buffer
			tb := setupLogged(t, b, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
			base := tb.serve(t)
			// Larger than the kernel buffers the client's writes can
			// vanish into, so that the client is still sending when the
			// server answers; a server that then closes at once resets the
			// connection, which a client often sees before the answer.
			// Each case runs a few times because that is a race.
			huge := strings.Repeat("x", 16<<20)
			for range 3 {
				cases := map[string]response{
					"huge header": getOverTCP(t, base+"/healthz", "X-Padding", huge),
					"huge URL":    getOverTCP(t, base+"/v1/locations?group="+huge),
				}
				for name, r := range cases {
					if r.status != http.StatusRequestHeaderFieldsTooLarge {
						t.Fatalf("%s: status %d, want 431: %s", name, r.status, r.body)
					}
					p := r.problem(t)
					if p.Code != "request_header_fields_too_large" || p.Status != 431 || p.Title == "" || p.Detail == "" {
						t.Errorf("%s: problem %+v", name, p)
					}
					if r.header.Get("X-Request-Id") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
						t.Errorf("%s: X-Request-Id %q, X-Content-Type-Options %q", name, r.header.Get("X-Request-Id"), r.header.Get("X-Content-Type-Options"))
					}
				}
			}
			if r := getOverTCP(t, base+"/healthz"); r.status != http.StatusOK {
				t.Fatalf("the node stopped answering after the refusals: %d %s", r.status, r.body)
			}
			out := logs.String()
			if !strings.Contains(out, `"status":431`) {
				t.Fatalf("the refusals were not logged, so this test proves nothing:\n%s", out)
			}
			if strings.Contains(out, `"level":"ERROR"`) {
				t.Fatalf("a client's oversized request was logged as an error:\n%s", out)
			}
		})
	}
}

// TestEveryAnswer_CarriesSecurityHeaders covers answers from every layer:
// a route, the error handler, the catch-all, the HTTP server itself and a
// refused WebSocket upgrade.
func TestEveryAnswer_CarriesSecurityHeaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
		cases := []struct {
			name, method, path, token string
			headers                   []string
			status                    int
		}{
			{"a route", "GET", "/v1/me", owner, nil, 200},
			{"the docs page", "GET", "/docs", "", nil, 200},
			{"an unauthorized request", "GET", "/v1/me", "", nil, 401},
			{"an unknown path", "GET", "/nowhere", "", nil, 404},
			{"a wrong method", "DELETE", "/v1/me", "", nil, 405},
			{"an unknown method", "BREW", "/v1/me", "", nil, 501},
			{"a realtime request that is no upgrade", "GET", "/v1/realtime", owner, nil, 400},
			{"a realtime upgrade of an unsupported version", "GET", "/v1/realtime", owner, append(upgrade, "Sec-WebSocket-Version", "8"), 400},
			{"a device link request that is no upgrade", "GET", "/device/v1/link", "", nil, 400},
			{"a device link upgrade without credentials", "GET", "/device/v1/link", "", append(upgrade, "Sec-WebSocket-Version", "13"), 401},
		}
		for _, tc := range cases {
			r := tb.do(t, tc.method, tc.path, tc.token, nil, tc.headers...)
			if r.status != tc.status {
				t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
			}
			if r.status >= 400 {
				r.problem(t)
			}
			for header, want := range map[string]string{
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"X-Frame-Options":         "DENY",
				"Content-Security-Policy": "frame-ancestors 'none'",
			} {
				if got := r.header.Get(header); got != want {
					t.Errorf("%s: %s %q, want %q", tc.name, header, got, want)
				}
			}
		}
	})
}
