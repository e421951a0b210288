package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Sign-in throttling holds back password guessing without giving an
// attacker a way to lock a person out. Three measures apply:
//
//   - Per client address, a token bucket on every attempt whatever the
//     e-mail, so that one address cannot spray guesses over many e-mails.
//   - Per (e-mail, client address), the failures: after a few free ones,
//     each further attempt from that address for that e-mail waits 1 s,
//     2 s, 4 s … up to a cap, and a success clears them. Only the address
//     that failed waits; the same e-mail from anywhere else is untouched.
//   - Per e-mail, a ceiling on the failures from all addresses together.
//     Past it the e-mail is slowed, never blocked: an address that has
//     failed for it may try it at most once a second (on top of its own
//     backoff), and an address with no recent failure for it is checked
//     at once, so the right password still signs in. Refusing the e-mail
//     outright would let anyone lock its owner out, and answering each
//     attempt after a delay would hold a request and its connection open
//     per attempt, which an attacker could pile up. Pacing costs the
//     server nothing and still spreads out a crowd of addresses' guesses.
//
// Whether the e-mail has a login plays no part, so the throttle answers an
// unknown e-mail exactly as a known one and reveals nothing. Entries are
// keyed by digests, so long input makes no entry larger; each table holds
// at most maxThrottleEntries, dropping the least recently used when full,
// and forgets an entry once it no longer holds anything back.

// backoffBase is the first wait after the free failures; each further
// failure doubles it.
const backoffBase = time.Second

// slowedPace is how often an address that has failed for an e-mail past
// its ceiling may try that e-mail.
const slowedPace = time.Second

// maxThrottleEntries bounds each of the throttle's tables, so a flood of
// distinct addresses or e-mails costs a fixed amount of memory (about
// 15 MB per table when full).
const maxThrottleEntries = 100_000

// sweepBatch bounds how many expired entries one call clears, so no
// single sign-in pays for a large sweep.
const sweepBatch = 64

// attemptOutcome is how a checked attempt ended.
type attemptOutcome int

const (
	// attemptAborted: the attempt proved nothing (the database failed).
	attemptAborted attemptOutcome = iota
	attemptFailed
	attemptSucceeded
)

// throttleKey is a digest of an e-mail, an address or both.
type throttleKey [16]byte

func keyOf(parts ...string) throttleKey {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		// Length-prefixed, so no two different lists of parts share a key.
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	var k throttleKey
	copy(k[:], h.Sum(nil))
	return k
}

// loginAttempt is an admitted attempt, to be settled once its password
// has been checked.
type loginAttempt struct {
	pair  throttleKey
	email throttleKey
}

// throttleConfig tunes a loginThrottle.
type throttleConfig struct {
	// ClientPerMinute and ClientBurst bound all attempts from one address;
	// a zero rate turns the limit off.
	ClientPerMinute float64
	ClientBurst     int
	// FreeFailures is how many failures a pair has before it must wait.
	FreeFailures int
	// BackoffMax caps a pair's wait.
	BackoffMax time.Duration
	// EmailPerMinute is the rate of failures an e-mail may have from all
	// addresses, and EmailCeiling how many may come at once, before it is
	// slowed; a zero rate turns the ceiling off.
	EmailPerMinute float64
	EmailCeiling   int
	// MaxEntries bounds each table.
	MaxEntries int
}

// throttleConfigOf reads the sign-in settings of cfg.
func throttleConfigOf(cfg Config) throttleConfig {
	backoffMax := cfg.LoginBackoffMax
	if backoffMax <= 0 {
		backoffMax = 15 * time.Minute
	}
	return throttleConfig{
		ClientPerMinute: cfg.LoginPerMinutePerClient,
		ClientBurst:     max(1, cfg.LoginBurstPerClient),
		FreeFailures:    max(0, cfg.LoginFreeFailures),
		BackoffMax:      max(backoffBase, backoffMax),
		EmailPerMinute:  cfg.LoginPerMinutePerEmail,
		EmailCeiling:    max(1, cfg.LoginBurstPerEmail),
		MaxEntries:      maxThrottleEntries,
	}
}

// loginThrottle decides which sign-in attempts are checked. One mutex
// guards all of it; every call is a few map operations, small beside the
// password hash each admitted attempt costs.
type loginThrottle struct {
	cfg throttleConfig
	// pairMemory is how long a pair's failures are kept after its last
	// attempt: longer than the longest wait, so that an address trying
	// at the cap stays at the cap, while one that stops starts afresh.
	pairMemory time.Duration

	mu      sync.Mutex
	clients *table[*clientBucket]
	pairs   *table[*pairState]
	emails  *table[*emailState]
}

type clientBucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// pairState is what one (e-mail, client address) pair has done lately.
type pairState struct {
	failures    int
	lastFailure time.Time
	// inFlight counts admitted attempts whose password is still being
	// checked: concurrent attempts must not all pass on one count.
	inFlight int
	touched  time.Time
}

// emailState is an e-mail's recent failures from every address: a level
// that each failure raises by one and that drains at the ceiling's rate.
type emailState struct {
	level float64
	at    time.Time
}

func newLoginThrottle(cfg throttleConfig) *loginThrottle {
	t := &loginThrottle{cfg: cfg, pairMemory: max(time.Hour, 2*cfg.BackoffMax)}
	t.clients = newTable(cfg.MaxEntries, func(b *clientBucket, now time.Time) bool {
		// A bucket that has refilled is the same as no bucket.
		full := time.Duration(float64(cfg.ClientBurst) / cfg.ClientPerMinute * float64(time.Minute))
		return now.Sub(b.lastSeen) >= full
	})
	t.pairs = newTable(cfg.MaxEntries, func(p *pairState, now time.Time) bool {
		return now.Sub(p.touched) >= t.pairMemory
	})
	t.emails = newTable(cfg.MaxEntries, func(e *emailState, now time.Time) bool {
		return t.levelAt(e, now) <= 0
	})
	return t
}

// levelAt is e's level drained to now.
func (t *loginThrottle) levelAt(e *emailState, now time.Time) float64 {
	drained := now.Sub(e.at).Seconds() * t.cfg.EmailPerMinute / 60
	return max(0, e.level-drained)
}

// slowed reports whether the e-mail is past its ceiling.
func (t *loginThrottle) slowed(key throttleKey, now time.Time) bool {
	if t.cfg.EmailPerMinute <= 0 {
		return false
	}
	e, ok := t.emails.get(key, now)
	return ok && t.levelAt(e, now) > float64(t.cfg.EmailCeiling)
}

// backoff is the wait after a pair's failures, zero while they are free.
func (t *loginThrottle) backoff(failures int) time.Duration {
	over := failures - t.cfg.FreeFailures
	switch {
	case over < 0:
		return 0
	case over >= 30:
		return t.cfg.BackoffMax
	}
	return min(backoffBase<<over, t.cfg.BackoffMax)
}

// admit checks whether an attempt for email from client may have its
// password checked now. It returns zero and the attempt to settle, or how
// long the caller must wait.
func (t *loginThrottle) admit(email, client string, now time.Time) (loginAttempt, time.Duration) {
	a := loginAttempt{pair: keyOf(email, client), email: keyOf(email)}
	t.mu.Lock()
	defer t.mu.Unlock()

	p, ok := t.pairs.get(a.pair, now)
	if !ok {
		p = &pairState{}
	}
	slowed := t.slowed(a.email, now)
	var wait time.Duration
	switch {
	case p.inFlight > 0 && (slowed || p.failures+p.inFlight >= t.cfg.FreeFailures):
		// Past the free failures, a pair's attempts are checked one at a
		// time; otherwise a burst sent at once would all pass on one count.
		wait = backoffBase
	case p.failures > 0:
		wait = p.lastFailure.Add(t.backoff(p.failures)).Sub(now)
	}
	if slowed && p.failures > 0 {
		wait = max(wait, p.lastFailure.Add(slowedPace).Sub(now))
	}
	if wait > 0 {
		return a, wait
	}
	if wait := t.takeClient(client, now); wait > 0 {
		return a, wait
	}
	p.inFlight++
	p.touched = now
	t.pairs.put(a.pair, p)
	return a, 0
}

// takeClient spends one of the address's tokens, or says how long to wait
// for one.
func (t *loginThrottle) takeClient(client string, now time.Time) time.Duration {
	if t.cfg.ClientPerMinute <= 0 {
		return 0
	}
	key := keyOf(client)
	b, ok := t.clients.get(key, now)
	if !ok {
		b = &clientBucket{lim: rate.NewLimiter(rate.Limit(t.cfg.ClientPerMinute/60), t.cfg.ClientBurst)}
	}
	b.lastSeen = now
	t.clients.put(key, b)
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// settle records how an admitted attempt ended: a failure counts against
// its pair and its e-mail, a success clears its pair.
func (t *loginThrottle) settle(a loginAttempt, now time.Time, outcome attemptOutcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pairs.get(a.pair, now)
	if !ok {
		// Evicted while the password was checked; a failure starts it
		// again.
		p = &pairState{}
	}
	p.inFlight = max(0, p.inFlight-1)
	switch outcome {
	case attemptSucceeded:
		t.pairs.remove(a.pair)
		return
	case attemptFailed:
		p.failures++
		p.lastFailure = now
		t.failEmail(a.email, now)
	}
	if p.failures == 0 && p.inFlight == 0 {
		t.pairs.remove(a.pair)
		return
	}
	p.touched = now
	t.pairs.put(a.pair, p)
}

// failEmail raises the e-mail's level. It stops at twice the ceiling, so
// however many failures there were, the slowing ends once they have
// stopped for as long as the ceiling takes to drain (a minute, as the
// settings set it).
func (t *loginThrottle) failEmail(key throttleKey, now time.Time) {
	if t.cfg.EmailPerMinute <= 0 {
		return
	}
	e, ok := t.emails.get(key, now)
	if !ok {
		e = &emailState{}
	}
	e.level = min(t.levelAt(e, now)+1, 2*float64(t.cfg.EmailCeiling))
	e.at = now
	t.emails.put(key, e)
}

// table is one of the throttle's bounded maps. It holds at most its
// capacity, evicting the least recently stored entry when full, and drops
// expired entries from its old end as it is used.
type table[V any] struct {
	lru     *simplelru.LRU[throttleKey, V]
	expired func(v V, now time.Time) bool
}

func newTable[V any](capacity int, expired func(V, time.Time) bool) *table[V] {
	// NewLRU fails only for a capacity below one.
	lru, _ := simplelru.NewLRU[throttleKey, V](max(1, capacity), nil)
	return &table[V]{lru: lru, expired: expired}
}

// get returns key's entry unless it has expired.
func (t *table[V]) get(key throttleKey, now time.Time) (V, bool) {
	t.sweep(now)
	v, ok := t.lru.Peek(key)
	if ok && t.expired(v, now) {
		t.lru.Remove(key)
		var zero V
		return zero, false
	}
	return v, ok
}

// put stores key's entry as the most recent.
func (t *table[V]) put(key throttleKey, v V) { t.lru.Add(key, v) }

func (t *table[V]) remove(key throttleKey) { t.lru.Remove(key) }

func (t *table[V]) len() int { return t.lru.Len() }

// sweep drops expired entries from the old end, where the entries stored
// longest ago, and so the first to expire, are.
func (t *table[V]) sweep(now time.Time) {
	for range sweepBatch {
		_, v, ok := t.lru.GetOldest()
		if !ok || !t.expired(v, now) {
			return
		}
		t.lru.RemoveOldest()
	}
}
