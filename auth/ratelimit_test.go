package auth

import (
	"fmt"
	"testing"
	"time"
)

// t0 is the throttle tests' clock: each test moves it by hand.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const victim = "owner@example.test"

// newTestThrottle returns a throttle with five free failures, a 15-minute
// cap, and no per-address or per-e-mail limits unless tweak sets them.
func newTestThrottle(tweak func(*throttleConfig)) *loginThrottle {
	cfg := throttleConfig{
		FreeFailures: 5,
		BackoffMax:   15 * time.Minute,
		EmailCeiling: 1,
		MaxEntries:   1000,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return newLoginThrottle(cfg)
}

// try admits an attempt at now and settles it with outcome. It returns
// the wait when the attempt was refused.
func try(th *loginThrottle, email, client string, now time.Time, outcome attemptOutcome) time.Duration {
	a, wait := th.admit(email, client, now)
	if wait > 0 {
		return wait
	}
	th.settle(a, now, outcome)
	return 0
}

// mustFail records a wrong password that the throttle must let through.
func mustFail(t *testing.T, th *loginThrottle, email, client string, now time.Time) {
	t.Helper()
	if wait := try(th, email, client, now, attemptFailed); wait > 0 {
		t.Fatalf("attempt for %s from %s at %v refused for %v", email, client, now.Sub(t0), wait)
	}
}

func TestThrottle_WrongPasswordsFromOneAddress_NeverHoldBackAnother(t *testing.T) {
	th := newTestThrottle(func(c *throttleConfig) {
		c.ClientPerMinute, c.ClientBurst = 20, 20
		c.EmailPerMinute, c.EmailCeiling = 5, 5
	})
	now := t0
	for range 5 {
		mustFail(t, th, victim, "198.51.100.7", now)
	}
	if wait := try(th, victim, "198.51.100.7", now, attemptFailed); wait != time.Second {
		t.Fatalf("sixth attempt from the failing address: wait %v, want 1s", wait)
	}
	// The attacker keeps at it for an hour, trying whenever allowed, and
	// has just failed again.
	end := t0.Add(time.Hour)
	for {
		a, wait := th.admit(victim, "198.51.100.7", now)
		if wait > 0 {
			now = now.Add(wait)
			continue
		}
		th.settle(a, now, attemptFailed)
		if !now.Before(end) {
			break
		}
	}
	if wait := try(th, victim, "198.51.100.7", now, attemptFailed); wait == 0 {
		t.Fatal("the failing address is not held back")
	}
	if wait := try(th, victim, "203.0.113.20", now, attemptSucceeded); wait != 0 {
		t.Fatalf("right password from another address refused for %v", wait)
	}
}

func TestThrottle_Backoff_DoublesAfterTheFreeFailuresUpToTheCap(t *testing.T) {
	th := newTestThrottle(func(c *throttleConfig) { c.BackoffMax = 30 * time.Second })
	const client = "198.51.100.7"
	now := t0
	for range 5 {
		mustFail(t, th, victim, client, now)
	}
	for _, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		want *= time.Second
		if wait := try(th, victim, client, now, attemptFailed); wait != want {
			t.Fatalf("right after a failure: wait %v, want %v", wait, want)
		}
		if wait := try(th, victim, client, now.Add(want-time.Millisecond), attemptFailed); wait != time.Millisecond {
			t.Fatalf("a moment early: wait %v, want 1ms", wait)
		}
		now = now.Add(want)
		mustFail(t, th, victim, client, now)
	}
}

func TestThrottle_Success_ClearsThePair(t *testing.T) {
	th := newTestThrottle(nil)
	const client = "198.51.100.7"
	for range 5 {
		mustFail(t, th, victim, client, t0)
	}
	mustFail(t, th, victim, client, t0.Add(time.Second))
	// Two seconds after the sixth failure, its wait is over.
	now := t0.Add(3 * time.Second)
	if wait := try(th, victim, client, now, attemptSucceeded); wait != 0 {
		t.Fatalf("right password after the wait refused for %v", wait)
	}
	// The count starts again: five free failures, then a second's wait.
	for i := range 5 {
		if wait := try(th, victim, client, now, attemptFailed); wait != 0 {
			t.Fatalf("free failure %d after a success refused for %v", i+1, wait)
		}
	}
	if wait := try(th, victim, client, now, attemptFailed); wait != time.Second {
		t.Fatalf("sixth failure after a success: wait %v, want 1s", wait)
	}
}

func TestThrottle_EmailCeiling_SlowsAddressesThatFailedButNeverBlocksTheRightPassword(t *testing.T) {
	th := newTestThrottle(func(c *throttleConfig) { c.EmailPerMinute, c.EmailCeiling = 5, 5 })
	now := t0
	// A crowd of addresses, two wrong passwords each: free for each of
	// them, but far past the e-mail's ceiling together.
	for i := range 20 {
		client := fmt.Sprintf("198.51.100.%d", i)
		mustFail(t, th, victim, client, now)
		if i < 3 {
			mustFail(t, th, victim, client, now)
		}
	}
	// An address that failed once, well inside its free failures, is
	// paced: once a second.
	if wait := try(th, victim, "198.51.100.10", now, attemptFailed); wait != time.Second {
		t.Fatalf("failing address past the ceiling: wait %v, want 1s", wait)
	}
	now = now.Add(time.Second)
	mustFail(t, th, victim, "198.51.100.10", now)
	// An address with no failure is checked at once, and the right
	// password signs in; so does a second address's after its pace.
	if wait := try(th, victim, "203.0.113.20", now, attemptSucceeded); wait != 0 {
		t.Fatalf("right password from a new address refused for %v", wait)
	}
	if wait := try(th, victim, "198.51.100.3", now, attemptSucceeded); wait != 0 {
		t.Fatalf("right password from an address that failed a second ago refused for %v", wait)
	}
	// Other e-mails are not slowed.
	mustFail(t, th, "someone@example.test", "198.51.100.10", now)
	mustFail(t, th, "someone@example.test", "198.51.100.10", now)

	// Within a couple of minutes of the failures stopping, the pace ends.
	now = now.Add(2*time.Minute + time.Second)
	mustFail(t, th, victim, "198.51.100.11", now)
	mustFail(t, th, victim, "198.51.100.11", now)
}

func TestThrottle_ConcurrentAttempts_PastTheFreeFailuresPassOneAtATime(t *testing.T) {
	th := newTestThrottle(nil)
	const client = "198.51.100.7"
	var admitted []loginAttempt
	for range 8 {
		if a, wait := th.admit(victim, client, t0); wait == 0 {
			admitted = append(admitted, a)
		}
	}
	if len(admitted) != 5 {
		t.Fatalf("%d attempts admitted at once, want the 5 free ones", len(admitted))
	}
	for _, a := range admitted {
		th.settle(a, t0, attemptFailed)
	}
	now := t0.Add(time.Second)
	if _, wait := th.admit(victim, client, now); wait != 0 {
		t.Fatalf("first attempt after the wait refused for %v", wait)
	}
	if _, wait := th.admit(victim, client, now); wait == 0 {
		t.Fatal("a second attempt was admitted while the first was being checked")
	}
}

func TestThrottle_PerAddressLimit_StopsSprayingOverManyEmails(t *testing.T) {
	th := newTestThrottle(func(c *throttleConfig) { c.ClientPerMinute, c.ClientBurst = 20, 20 })
	for i := range 20 {
		mustFail(t, th, fmt.Sprintf("user%d@example.test", i), "198.51.100.7", t0)
	}
	if wait := try(th, "user20@example.test", "198.51.100.7", t0, attemptFailed); wait != 3*time.Second {
		t.Fatalf("21st e-mail from one address: wait %v, want 3s", wait)
	}
	if wait := try(th, "user20@example.test", "203.0.113.20", t0, attemptFailed); wait != 0 {
		t.Fatalf("another address refused for %v", wait)
	}
}

func TestThrottle_Tables_EvictTheOldestWhenFullAndForgetIdleEntries(t *testing.T) {
	th := newTestThrottle(func(c *throttleConfig) {
		c.MaxEntries = 3
		c.ClientPerMinute, c.ClientBurst = 60, 60
		c.EmailPerMinute, c.EmailCeiling = 60, 100
	})
	const client = "198.51.100.7"
	for range 5 {
		mustFail(t, th, victim, client, t0)
	}
	if wait := try(th, victim, client, t0, attemptFailed); wait == 0 {
		t.Fatal("the victim's pair is not backing off")
	}
	// A flood of distinct pairs and e-mails keeps each table at its cap,
	// and pushes the oldest, the victim's pair, out.
	for i := range 100 {
		mustFail(t, th, fmt.Sprintf("flood%d@example.test", i), fmt.Sprintf("192.0.2.%d", i), t0)
	}
	for name, n := range map[string]int{"pairs": th.pairs.len(), "emails": th.emails.len(), "clients": th.clients.len()} {
		if n > 3 {
			t.Fatalf("%s table holds %d entries, cap 3", name, n)
		}
	}
	if wait := try(th, victim, client, t0, attemptFailed); wait != 0 {
		t.Fatalf("the evicted pair still waits %v", wait)
	}

	// Left alone past their memory, entries go as the tables are used.
	later := t0.Add(th.pairMemory)
	mustFail(t, th, "late@example.test", "203.0.113.20", later)
	for name, n := range map[string]int{"pairs": th.pairs.len(), "emails": th.emails.len(), "clients": th.clients.len()} {
		if n != 1 {
			t.Fatalf("%s table holds %d entries after the others expired, want 1", name, n)
		}
	}
}
