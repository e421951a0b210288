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
					if r.header.Get("X-Request-Id") == "" {
						t.Errorf("%s: no X-Request-Id", name)
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
