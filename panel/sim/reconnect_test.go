package sim

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/panel"
)

// scriptedServer answers each link handshake with a function of its
// attempt number (from 1), and records when each attempt arrived.
type scriptedServer struct {
	url      string
	attempts chan time.Time
}

func newScriptedServer(t *testing.T, handle func(attempt int, w http.ResponseWriter, r *http.Request)) *scriptedServer {
	t.Helper()
	s := &scriptedServer{attempts: make(chan time.Time, 64)}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A panel dials one link at a time, so attempts never overlap.
		n++
		s.attempts <- time.Now()
		handle(n, w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// nextAttempt waits for the next handshake and returns when it arrived.
func (s *scriptedServer) nextAttempt(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-s.attempts:
		return at
	case <-time.After(within):
		t.Fatalf("no link handshake within %s", within)
		return time.Time{}
	}
}

// accept upgrades the handshake and, if hello is set, says hello and
// reads the panel's first check-in, as a server linking a panel does. It
// returns nil if the panel went away meanwhile: the test then sees no
// further attempt, or the wrong counts.
func accept(w http.ResponseWriter, r *http.Request, hello bool) *websocket.Conn {
	upgrader := websocket.Upgrader{}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil
	}
	if hello {
		now := time.Now().UTC()
		if err := conn.WriteJSON(panel.Frame{Type: panel.FrameHello, ServerTime: &now, CheckinIntervalS: 1800}); err != nil {
			_ = conn.Close()
			return nil
		}
		if _, _, err := conn.ReadMessage(); err != nil {
			_ = conn.Close()
			return nil
		}
	}
	return conn
}

// closeWith ends a link with a close frame carrying code and reason.
func closeWith(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = conn.Close()
}

// holdOpen keeps a link until the panel closes it.
func holdOpen(conn *websocket.Conn) {
	defer conn.Close()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

// A drain close is obeyed: the panel comes back after the delay its
// reason names, or after the default 1 to 5 seconds when the reason is
// malformed; the backoff after a lost link would be a few hundred
// milliseconds at most.
func TestRun_DrainClose_RedialsAfterTheServersDelay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, reason string
		least, most  time.Duration
	}{
		{"reconnect_after_ms=300", "reconnect_after_ms=300", 300 * time.Millisecond, time.Second},
		{"malformed reason", "reconnect_after=soon", drainDefaultMin, drainDefaultMin + drainDefaultSpread + time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closedAt := make(chan time.Time, 1)
			s := newScriptedServer(t, func(attempt int, w http.ResponseWriter, r *http.Request) {
				conn := accept(w, r, true)
				if conn == nil {
					return
				}
				if attempt == 1 {
					closedAt <- time.Now()
					closeWith(conn, CloseDraining, tc.reason)
					return
				}
				holdOpen(conn)
			})
			p := NewPanel(Credentials{Serial: "SN-DRAIN", Secret: "s"}, Options{})
			runPanel(t, p, s.url)
			s.nextAttempt(t, 5*time.Second)
			closed := <-closedAt
			back := s.nextAttempt(t, 10*time.Second)

			if waited := back.Sub(closed); waited < tc.least || waited >= tc.most {
				t.Fatalf("dialled again %s after the drain close, want %s to %s", waited, tc.least, tc.most)
			}
			if st := p.Stats(); st.DrainCloses != 1 || st.DroppedLinks != 0 {
				t.Fatalf("drain closes %d, dropped links %d; want 1 and 0", st.DrainCloses, st.DroppedLinks)
			}
		})
	}
}

func TestRun_Unavailable_WaitsTheRetryAfter(t *testing.T) {
	t.Parallel()
	s := newScriptedServer(t, func(attempt int, w http.ResponseWriter, r *http.Request) {
		if attempt == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "reconnect storm", http.StatusServiceUnavailable)
			return
		}
		if conn := accept(w, r, true); conn != nil {
			holdOpen(conn)
		}
	})
	p := NewPanel(Credentials{Serial: "SN-503", Secret: "s"}, Options{})
	runPanel(t, p, s.url)
	refused := s.nextAttempt(t, 5*time.Second)
	back := s.nextAttempt(t, 5*time.Second)

	// One second plus up to half a second of jitter; the backoff after
	// one failed dial would be 200ms at most.
	if waited := back.Sub(refused); waited < time.Second || waited > 2500*time.Millisecond {
		t.Fatalf("dialled again %s after a 503 with Retry-After: 1, want 1 to 1.5 seconds", waited)
	}
	if n := p.Stats().DialFailures["http 503"]; n != 1 {
		t.Fatalf("dial failures http 503 = %d, want 1", n)
	}
}

// Links the server accepts and then drops are counted apart from links
// that lived, drained or were replaced.
func TestRun_LinkEnds_CountDroppedLinks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		end         func(w http.ResponseWriter, r *http.Request)
		wantDropped int64
	}{
		{"closed before hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, false); conn != nil {
				closeWith(conn, websocket.CloseTryAgainLater, "busy")
			}
		}, 1},
		{"connection cut before hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, false); conn != nil {
				_ = conn.Close()
			}
		}, 1},
		{"closed with an error right after hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, true); conn != nil {
				closeWith(conn, websocket.CloseInternalServerErr, "oops")
			}
		}, 1},
		{"replaced right after hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, true); conn != nil {
				closeWith(conn, CloseReplaced, "replaced by a newer connection")
			}
		}, 0},
		{"drained right after hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, true); conn != nil {
				closeWith(conn, CloseDraining, "reconnect_after_ms=0")
			}
		}, 0}, // A link whose hello never came (a server too busy to greet it in
		// time) that the server later drains was ended on purpose.
		{"drained before any hello", func(w http.ResponseWriter, r *http.Request) {
			if conn := accept(w, r, false); conn != nil {
				closeWith(conn, CloseDraining, "reconnect_after_ms=0")
			}
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedServer(t, func(attempt int, w http.ResponseWriter, r *http.Request) {
				if attempt == 1 {
					tc.end(w, r)
					return
				}
				if conn := accept(w, r, true); conn != nil {
					holdOpen(conn)
				}
			})
			p := NewPanel(Credentials{Serial: "SN-DROP", Secret: "s"}, Options{})
			runPanel(t, p, s.url)
			s.nextAttempt(t, 5*time.Second)
			// The first link's end is counted before the panel dials again.
			s.nextAttempt(t, 5*time.Second)
			if n := p.Stats().DroppedLinks; n != tc.wantDropped {
				t.Fatalf("dropped links %d after one link, want %d", n, tc.wantDropped)
			}
		})
	}
}

func TestParseDrainReason(t *testing.T) {
	cases := []struct {
		reason string
		want   time.Duration
		ok     bool
	}{
		{"reconnect_after_ms=300", 300 * time.Millisecond, true},
		{"reconnect_after_ms=0", 0, true},
		{"reconnect_after_ms=86400000", maxServerDelay, true},
		{"reconnect_after_ms=99999999999999999999999", maxServerDelay, true},
		{"reconnect_after_ms=", 0, false},
		{"reconnect_after_ms=-5", 0, false},
		{"reconnect_after_ms=1.5", 0, false},
		{"reconnect_after_ms=300 ", 0, false},
		{"Reconnect_after_ms=300", 0, false},
		{"", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseDrainReason(tc.reason)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseDrainReason(%q) = %s, %v; want %s, %v", tc.reason, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"1", time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"100000", maxServerDelay},
		{"Wed, 02 Dec 2026 12:00:10 GMT", 10 * time.Second},
		{"Wed, 02 Dec 2026 11:59:00 GMT", 0},
		{"Wed, 02 Dec 2026 18:00:00 GMT", maxServerDelay},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"", 0},
	}
	for _, tc := range cases {
		if got := parseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}
