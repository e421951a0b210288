package sim

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

// LinkPath is where the server accepts panel links.
const LinkPath = "/device/v1/link"

// Timing of the link. The panel pings the server itself, so a dead link is
// noticed even when the server never pings and the check-in interval is
// long.
const (
	dialTimeout  = 10 * time.Second
	helloTimeout = 10 * time.Second
	pingInterval = 30 * time.Second
	readTimeout  = 3*pingInterval + 5*time.Second
	writeTimeout = 10 * time.Second

	reconnectMin = 200 * time.Millisecond
	reconnectMax = 10 * time.Second
	// A panel whose credentials were refused retries slowly, so that a
	// revoked or mistyped secret does not hammer the server.
	authRetryMin = 15 * time.Second
	authRetryMax = 5 * time.Minute
)

// LinkURL turns a server base URL (http, https, ws or wss, with an
// optional path prefix) into the WebSocket URL of the panel link.
func LinkURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server URL %q must start with http://, https://, ws:// or wss://", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("server URL %q has no host", base)
	}
	if u.User != nil {
		return "", fmt.Errorf("server URL must not carry credentials")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + LinkPath
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

func newDialer() *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: dialTimeout}
}

// Run links the panel to the server at baseURL and keeps it linked,
// reconnecting with exponential backoff and jitter, until ctx ends; then it
// closes the link and returns nil. It returns an error at once if the
// options, the credentials or the URL are unusable, or if the panel is
// already running.
func (p *Panel) Run(ctx context.Context, baseURL string) error {
	if err := p.opts.Validate(); err != nil {
		return fmt.Errorf("panel %s: %w", p.cred.Serial, err)
	}
	if err := p.cred.Validate(); err != nil {
		return fmt.Errorf("panel credentials: %w", err)
	}
	link, err := LinkURL(baseURL)
	if err != nil {
		return err
	}
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("panel %s is already running", p.cred.Serial)
	}
	defer p.running.Store(false)
	defer p.setState(StateStopped, nil)

	if !sleep(ctx, p.startDelay) {
		return nil
	}
	failures, authFailures := 0, 0
	for ctx.Err() == nil {
		p.setState(StateConnecting, nil)
		conn, err := p.dial(ctx, link)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var delay time.Duration
			if errors.Is(err, ErrAuthRejected) {
				authFailures++
				delay = backoff(authFailures, authRetryMin, authRetryMax)
				p.setState(StateAuthRejected, err)
				p.count(func(st *Stats) { st.AuthRejections++ })
				// Warn once per spell of rejections: a fleet with a stale
				// credentials file would otherwise flood the log.
				level := slog.LevelDebug
				if authFailures == 1 {
					level = slog.LevelWarn
				}
				p.log.Log(ctx, level, "panel credentials rejected", "err", err, "retry_in", delay.Round(time.Millisecond))
			} else {
				failures++
				delay = backoff(failures, reconnectMin, reconnectMax)
				p.setState(StateConnecting, err)
				kind := DialFailureKind(err)
				p.count(func(st *Stats) {
					if st.DialFailures == nil {
						st.DialFailures = make(map[string]int64)
					}
					st.DialFailures[kind]++
				})
				p.log.Debug("dial failed", "err", err, "retry_in", delay.Round(time.Millisecond))
			}
			sleep(ctx, delay)
			continue
		}
		authFailures = 0
		greeted, err := p.serve(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		// A link that got as far as hello was healthy: start the backoff
		// again from the bottom.
		if greeted {
			failures = 0
		}
		failures++
		p.setState(StateConnecting, err)
		sleep(ctx, backoff(failures, reconnectMin, reconnectMax))
	}
	return nil
}

// dial opens the link, authenticating with the panel's serial and secret.
func (p *Panel) dial(ctx context.Context, link string) (*websocket.Conn, error) {
	if p.dialSlots != nil {
		select {
		case p.dialSlots <- struct{}{}:
			defer func() { <-p.dialSlots }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	header := http.Header{}
	header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(p.cred.Serial+":"+p.cred.Secret)))
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, resp, err := p.dialer.DialContext(ctx, link, header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%w: HTTP %d from %s", ErrAuthRejected, resp.StatusCode, link)
			}
			return nil, fmt.Errorf("dial %s: %w", link, &httpStatusError{status: resp.StatusCode, err: err})
		}
		return nil, fmt.Errorf("dial %s: %w", link, err)
	}
	return conn, nil
}

// DialFailureKind names why a dial failed, for counting: "refused" (no
// server at the address), "timeout", "tls" (a handshake or certificate
// failure, or TLS spoken to a plain server), "dns", "http 503" and the like
// for a server that answered without upgrading, or "other".
func DialFailureKind(err error) string {
	var (
		httpErr *httpStatusError
		dnsErr  *net.DNSError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &httpErr):
		return "http " + strconv.Itoa(httpErr.status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &certErr), errors.As(err, &recErr), strings.Contains(err.Error(), "tls: "):
		return "tls"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return "other"
}

// httpStatusError is a dial the server answered with a status other than
// the upgrade.
type httpStatusError struct {
	status int
	err    error
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d: %v", e.status, e.err) }
func (e *httpStatusError) Unwrap() error { return e.err }

// backoff returns the wait before retry number attempt (from 1): doubling
// from lo up to hi, then randomised over its upper half so that many
// panels that lost the server together do not return together.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// jittered returns d ±25%, so that periodic activity of many panels
// started together spreads out.
func jittered(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends, and reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
