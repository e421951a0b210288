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
	// refused counts the links refused in the second that began at
	// second: the size of the storm, which sizes the wait asked of the
	// next ones.
	refused int
	second  time.Time
}

func newAdmission(perSecond float64, burst int) admission {
	return admission{limiter: rate.NewLimiter(rate.Limit(perSecond), burst), rate: perSecond}
}

// maxAdmitWait bounds the Retry-After asked of a panel.
const maxAdmitWait = 60

// take reports whether a link may be taken now, and if not how long the
// panel should wait: a whole number of seconds, from 1 up to what the
// refusals of the last second would take to admit at the rate.
func (a *admission) take(now time.Time) (ok bool, retryAfter time.Duration) {
	if a.limiter.AllowN(now, 1) {
		return true, 0
	}
	a.mu.Lock()
	if now.Sub(a.second) >= time.Second {
		a.second, a.refused = now, 0
	}
	a.refused++
	backlog := a.refused
	a.mu.Unlock()
	spread := min(maxAdmitWait, max(1, int(math.Ceil(float64(backlog)/a.rate))))
	return false, time.Duration(1+rand.IntN(spread)) * time.Second
}

// Admit says whether this node takes a new panel link now. It refuses one
// with 503 service_unavailable and a Retry-After while the node is
// draining (the panel should link to another node, or to this one once it
// is back) or while links arrive faster than the node takes them.
func (l *Link) Admit() error {
	if l.draining.Load() {
		return &models.Error{Code: models.CodeServiceUnavailable, Message: "this server is shutting down; link again in a moment",
			RetryAfter: time.Duration(1+rand.IntN(3)) * time.Second}
	}
	ok, wait := l.admit.take(time.Now())
	if !ok {
		l.cfg.Metrics.linkRefused()
		return &models.Error{Code: models.CodeServiceUnavailable, Message: "this server is taking panel links at a bounded rate; link again after the Retry-After delay",
			RetryAfter: wait}
	}
	return nil
}
