package sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Each way a dial can fail is counted under a name an operator can act on.
func TestDialFailureKind(t *testing.T) {
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := fmt.Sprintf("http://%s", closed.Addr())
	closed.Close()

	p := NewPanel(Credentials{Serial: "SN-1", Secret: "secret"}, Options{})
	for _, tc := range []struct {
		name, base, want string
	}{
		{"nothing listens", refusedURL, "refused"},
		{"the server answers 503", unavailable.URL, "http 503"},
		{"TLS spoken to a plain server", "https" + unavailable.URL[len("http"):], "tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link, err := LinkURL(tc.base)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := p.dial(context.Background(), link)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			if got := DialFailureKind(err); got != tc.want {
				t.Fatalf("DialFailureKind(%v) = %q, want %q", err, got, tc.want)
			}
		})
	}
}
