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

	// maxServerDelay bounds a wait the server asks for, by a drain close's
	// reason or a Retry-After header, so that a mistaken or hostile value
	// cannot park a panel for hours.
	maxServerDelay = 5 * time.Minute
	// drainDefaultMin and drainDefaultSpread make the wait after a drain
	// close whose reason names no usable delay: 1 to 5 seconds.
	drainDefaultMin    = time.Second
	drainDefaultSpread = 4 * time.Second
	// retryAfterMinJitter is the least spread added to a Retry-After, so
	// that panels told the same whole second do not return in one burst.
	retryAfterMinJitter = 500 * time.Millisecond
)

// DroppedLinkWindow is how soon after hello a close by the server (other
// than a drain, a replacement or a revocation) counts as a dropped link
// rather than a link that lived and ended.
const DroppedLinkWindow = 5 * time.Second

// Close codes the server ends a link with that the panel treats apart.
const (
	// CloseReplaced: a newer link of the same panel took this one's place.
	CloseReplaced = 4000
	// CloseRevoked: the panel's credential was revoked.
	CloseRevoked = 4003
	// CloseDraining: the node is draining. Its reason is
	// "reconnect_after_ms=N", the already jittered wait before dialling
	// again.
	CloseDraining = 4010
)

// drainReasonPrefix starts the reason of a CloseDraining close.
const drainReasonPrefix = "reconnect_after_ms="

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
// closes the link and returns nil. A node that drains closes the link with
// CloseDraining and says in the reason how long to wait, and the panel
// waits that long; a node that answers the dial 503 or 429 with a
// Retry-After is left alone that long, plus jitter. It returns an error at once if the
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
			var httpErr *httpStatusError
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
				// A server that is busy or restarting and says when to come
				// back is obeyed, with jitter, rather than retried soon.
				if errors.As(err, &httpErr) && httpErr.retryAfter > 0 {
					delay = retryAfterDelay(httpErr.retryAfter)
				}
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
		end := p.serve(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		p.setState(StateConnecting, end.err)
		if end.dropped() {
			p.count(func(st *Stats) { st.DroppedLinks++ })
		}
		if delay, ok := drainDelay(end.err); ok {
			// A drain is a calm end of a healthy link: come back when the
			// server said, and start the backoff again from the bottom.
			failures = 0
			p.count(func(st *Stats) { st.DrainCloses++ })
			p.log.Debug("server draining", "retry_in", delay.Round(time.Millisecond))
			sleep(ctx, delay)
			continue
		}
		// A link that got as far as hello was healthy: start the backoff
		// again from the bottom.
		if end.greeted {
			failures = 0
		}
		failures++
		sleep(ctx, backoff(failures, reconnectMin, reconnectMax))
	}
	return nil
}

// linkEnd is how one link ended.
type linkEnd struct {
	// greeted: the server said hello, or the panel stopped waiting for it.
	greeted bool
	// helloAt is when the server's hello arrived; zero if it never did.
	helloAt time.Time
	// endedAt is when the link ended.
	endedAt time.Time
	// byServer: the link ended on the reading side, because the server
	// closed it or the connection failed, not by the panel's own choice.
	byServer bool
	err      error
}

// dropped reports whether the server accepted the link and then dropped
// it: before its hello, or soon after it with a close that is neither a
// drain, a replacement nor a revocation.
func (e linkEnd) dropped() bool {
	if !e.byServer {
		return false
	}
	// A drain, a replacement or a revocation is the server ending a link
	// on purpose, whenever it comes.
	var ce *websocket.CloseError
	if errors.As(e.err, &ce) {
		switch ce.Code {
		case CloseDraining, CloseReplaced, CloseRevoked:
			return false
		}
	}
	if e.helloAt.IsZero() {
		return true
	}
	return e.endedAt.Sub(e.helloAt) < DroppedLinkWindow
}

// drainDelay reports whether err is the server's CloseDraining close and,
// if so, how long to wait before dialling again: the reason's
// reconnect_after_ms, bounded by maxServerDelay, or 1 to 5 seconds when
// the reason is missing or malformed.
func drainDelay(err error) (time.Duration, bool) {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseDraining {
		return 0, false
	}
	if d, ok := parseDrainReason(ce.Text); ok {
		return d, true
	}
	return drainDefaultMin + rand.N(drainDefaultSpread+1), true
}

// parseDrainReason reads "reconnect_after_ms=N", N a decimal count of
// milliseconds.
func parseDrainReason(reason string) (time.Duration, bool) {
	digits, ok := strings.CutPrefix(reason, drainReasonPrefix)
	if !ok || digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > uint64(maxServerDelay/time.Millisecond) {
		// Too many digits to parse is a wait far past the bound too.
		return maxServerDelay, true
	}
	return time.Duration(n) * time.Millisecond, true
}

// parseRetryAfter reads a Retry-After header: a whole number of seconds or
// an HTTP date. It returns 0 for a missing, malformed or past value, and
// bounds the rest by maxServerDelay.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	var d time.Duration
	if strings.TrimLeft(value, "0123456789") == "" {
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil || n > uint64(maxServerDelay/time.Second) {
			return maxServerDelay
		}
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(value); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxServerDelay)
}

// retryAfterDelay is the wait for a Retry-After of d: d plus up to half
// of it again, and at least retryAfterMinJitter's spread.
func retryAfterDelay(d time.Duration) time.Duration {
	return d + rand.N(max(d/2, retryAfterMinJitter)+1)
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
			statusErr := &httpStatusError{status: resp.StatusCode, err: err}
			if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
				statusErr.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			}
			return nil, fmt.Errorf("dial %s: %w", link, statusErr)
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
	// retryAfter is the wait a 503 or 429 asked for with Retry-After; 0
	// when it named none.
	retryAfter time.Duration
	err        error
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
