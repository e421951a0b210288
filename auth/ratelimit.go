package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter holds a token bucket per key (a client address, an e-mail).
// Idle buckets are swept so the map stays bounded by recent activity.
type keyedLimiter struct {
	mu        sync.Mutex
	perMinute float64
	burst     int
	buckets   map[string]*bucket
	lastSweep time.Time
	maxKeys   int
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newKeyedLimiter(perMinute float64, burst int) *keyedLimiter {
	return &keyedLimiter{
		perMinute: perMinute,
		burst:     burst,
		buckets:   map[string]*bucket{},
		maxKeys:   100_000,
	}
}

// take spends one token of key's bucket. It returns zero when allowed, or
// how long the caller must wait.
func (k *keyedLimiter) take(key string, now time.Time) time.Duration {
	if k.perMinute <= 0 {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweep(now)
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(k.perMinute/60), k.burst)}
		k.buckets[key] = b
	}
	b.lastSeen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// sweep drops buckets that have refilled completely, at most once a
// minute, or at once when the map is full.
func (k *keyedLimiter) sweep(now time.Time) {
	if now.Sub(k.lastSweep) < time.Minute && len(k.buckets) < k.maxKeys {
		return
	}
	k.lastSweep = now
	full := time.Duration(float64(k.burst)/k.perMinute*float64(time.Minute)) + time.Second
	for key, b := range k.buckets {
		if now.Sub(b.lastSeen) > full {
			delete(k.buckets, key)
		}
	}
}
