package panel

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/panelsync/panelsync/models"
)

// admission bounds how fast a node takes panel links. When a node comes
// back, or another goes, thousands of panels dial at once; each link costs
// an authentication and a few writes, and a node that tried them all at
// once would answer none in time. The links over the rate are answered 503
// with a Retry-After long enough, and random enough, to bring them back
// spread over the time the node needs to take them all.
type admission struct {
	limiter *rate.Limiter
	rate    float64

	mu sync.Mutex
	// refused counts the links refused a second: the size of the storm,
	// which sizes the wait asked of the next ones. recorded counts the
	// links the database recorded a second, which is what the node takes
	// while its database is behind.
	refused  perSecond
	recorded perSecond
}

// perSecond counts events in the current second and keeps the count of
// the second before.
type perSecond struct {
	start      time.Time
	this, last int
}

func (w *perSecond) roll(now time.Time) {
	if elapsed := now.Sub(w.start); elapsed >= time.Second {
		w.last = 0
		if elapsed < 2*time.Second {
			w.last = w.this
		}
		w.start, w.this = now, 0
	}
}

func (w *perSecond) add(now time.Time) {
	w.roll(now)
	w.this++
}

// rate returns the larger of this second's count so far and the last
// second's.
func (w *perSecond) rate(now time.Time) int {
	w.roll(now)
	return max(w.this, w.last)
}

func newAdmission(perSecond float64, burst int) admission {
	return admission{limiter: rate.NewLimiter(rate.Limit(perSecond), burst), rate: perSecond}
}

// maxAdmitWait bounds the Retry-After asked of a panel.
const maxAdmitWait = 60

// backlog bounds the links a node has taken and not yet recorded: a
// second's links at the rate, and never fewer than minBacklog. While the
// database keeps up, a link is recorded within milliseconds and the bound
// is never met; when it does not (SQLite's single writer, a database
// under load), the links past it wait at the panel rather than on the
// node, where each would hold the goroutine and stack of a handshake
// until its turn. A second's worth keeps the database busy meanwhile.
func (a *admission) backlog() int64 { return max(minBacklog, int64(a.rate)) }

const minBacklog = 32

// take reports whether a link may be taken now, and if not how long the
// panel should wait.
func (a *admission) take(now time.Time) (ok bool, retryAfter time.Duration) {
	if a.limiter.AllowN(now, 1) {
		return true, 0
	}
	return false, a.refuse(now, false)
}

// linkRecorded counts a link the database has recorded.
func (a *admission) linkRecorded(now time.Time) {
	a.mu.Lock()
	a.recorded.add(now)
	a.mu.Unlock()
}

// refuse counts a link refused and returns how long the panel should wait:
// a whole number of seconds, from 1 up to what the refusals of the last
// second would take to admit at the rate, or, when the database is behind,
// at the rate it records links.
func (a *admission) refuse(now time.Time, databaseBehind bool) time.Duration {
	a.mu.Lock()
	a.refused.add(now)
	storm := a.refused.rate(now)
	intake := a.rate
	if databaseBehind {
		// Not below a quarter of the rate: a node that has just started
		// has recorded few links yet, and would send the first panels it
		// refuses away for a minute.
		intake = max(a.rate/4, min(a.rate, float64(a.recorded.rate(now))))
	}
	a.mu.Unlock()
	spread := min(maxAdmitWait, max(1, int(math.Ceil(float64(storm)/intake))))
	return time.Duration(1+rand.IntN(spread)) * time.Second
}

// Admit says whether this node takes a new panel link now. It refuses one
// with 503 service_unavailable and a Retry-After while the node is
// draining (the panel should link to another node, or to this one once it
// is back), while links arrive faster than the node takes them, or while
// its database is behind with the links already taken.
func (l *Link) Admit() error {
	if l.draining.Load() {
		return &models.Error{Code: models.CodeServiceUnavailable, Message: "this server is shutting down; link again in a moment",
			RetryAfter: time.Duration(1+rand.IntN(3)) * time.Second}
	}
	if l.opening.Load() >= l.admit.backlog() {
		l.cfg.Metrics.linkRefused()
		return &models.Error{Code: models.CodeServiceUnavailable, Message: "this server is still recording the panel links it took; link again after the Retry-After delay",
			RetryAfter: l.admit.refuse(time.Now(), true)}
	}
	ok, wait := l.admit.take(time.Now())
	if !ok {
		l.cfg.Metrics.linkRefused()
		return &models.Error{Code: models.CodeServiceUnavailable, Message: "this server is taking panel links at a bounded rate; link again after the Retry-After delay",
			RetryAfter: wait}
	}
	return nil
}
