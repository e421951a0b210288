package chaos

import (
	"os"
	"testing"
	"time"
)

// settings are the test's tunable durations. The defaults keep the whole
// run, binaries included, under five minutes on a 2-core machine; each
// can be changed for local tuning through the variable named beside it.
// PANELSYNC_CHAOS_LOG_DIR, when set, keeps every process's log in that
// folder after the test.
type settings struct {
	// nodeDown is how long the SIGKILLed node stays dead before it is
	// started again.
	nodeDown time.Duration
	// natsDown is how long the NATS server stays stopped.
	natsDown time.Duration
	// dbDown is how long MariaDB stays dead after its SIGKILL.
	dbDown time.Duration
	// dbFrozen is how long MariaDB stays stopped by SIGSTOP. It is longer
	// than hangBound, so that a request that waits for the database
	// without a bound of its own shows up as a hang.
	dbFrozen time.Duration
	// hangBound is the longest any request may take, whatever is down.
	hangBound time.Duration
	// recoverWithin is how soon after a dependency returns both nodes must
	// answer reads and taps with 2xx again.
	recoverWithin time.Duration
	// panelLatency is how long each simulated panel takes to answer a
	// command, so that the batch is still in flight when a fault starts.
	panelLatency time.Duration
	// settle bounds each wait for the system to come to rest: a batch to
	// finish, every panel to link again, every run to end.
	settle time.Duration
}

func loadSettings(t *testing.T) settings {
	t.Helper()
	return settings{
		nodeDown:      envDuration(t, "PANELSYNC_CHAOS_NODE_DOWN", 4*time.Second),
		natsDown:      envDuration(t, "PANELSYNC_CHAOS_NATS_DOWN", 5*time.Second),
		dbDown:        envDuration(t, "PANELSYNC_CHAOS_DB_DOWN", 5*time.Second),
		dbFrozen:      envDuration(t, "PANELSYNC_CHAOS_DB_FROZEN", 12*time.Second),
		hangBound:     envDuration(t, "PANELSYNC_CHAOS_HANG_BOUND", 10*time.Second),
		recoverWithin: envDuration(t, "PANELSYNC_CHAOS_RECOVER_WITHIN", 5*time.Second),
		panelLatency:  envDuration(t, "PANELSYNC_CHAOS_PANEL_LATENCY", 300*time.Millisecond),
		settle:        envDuration(t, "PANELSYNC_CHAOS_SETTLE", 45*time.Second),
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 2*time.Minute {
		t.Fatalf("%s=%q: want a duration above 0 and at most 2m", name, v)
	}
	return d
}
