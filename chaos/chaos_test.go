package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChaos_NodeBusAndDatabaseFail_NothingLostOnly503sQuickRecovery runs
// two serve nodes on a MariaDB and a NATS server of the test's own, with
// 200 simulated panels, and in turn kills a node, stops the bus, kills
// the database and freezes it, each while an All Locations batch is in
// flight, a prober taps and reads on both nodes every 100 ms, and a
// client follows the Event Log. It asserts that every run ends exactly
// once, every offset reaches the client once and in order, a dependency
// that is down gets only 503s (never a 500 or a hang), no panel is blamed
// on a node that did not die, and service returns within seconds.
func TestChaos_NodeBusAndDatabaseFail_NothingLostOnly503sQuickRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test takes minutes; it does not run under -short")
	}
	began := time.Now()
	tl := findTools(t)
	st := loadSettings(t)
	bins := buildBinaries(t, t.TempDir())
	c := startCluster(t, tl, bins, st)
	a, b := c.nodes[0], c.nodes[1]
	t.Logf("cluster up after %s: %s", time.Since(began).Round(100*time.Millisecond), c)

	token, err := login(a, c.acct)
	if err != nil {
		t.Fatal(err)
	}
	w := startWatcher(token, c.nodes)
	watching := true
	t.Cleanup(func() {
		if watching {
			w.stop()
		}
	})
	// Each node taps the location of a panel linked to the other, so that
	// every tap crosses the bus.
	p := startProber(token, st.hangBound, []probe{
		{node: a, kind: "read", method: http.MethodGet, path: "/v1/locations/" + c.panelsOf["a"][1]},
		{node: a, kind: "tap", method: http.MethodPost, path: "/v1/locations/" + c.panelsOf["b"][0] + "/sync", body: `{"kind":"users"}`},
		{node: b, kind: "read", method: http.MethodGet, path: "/v1/locations/" + c.panelsOf["b"][1]},
		{node: b, kind: "tap", method: http.MethodPost, path: "/v1/locations/" + c.panelsOf["a"][0] + "/sync", body: `{"kind":"users"}`},
	})
	probing := true
	t.Cleanup(func() {
		if probing {
			p.stop()
		}
	})

	scenarios := []*scenario{
		{
			name: "node A SIGKILLed", killed: a.name, down: st.nodeDown, batchOn: b,
			fault:   a.kill,
			restore: a.start,
		},
		{
			name: "NATS stopped", down: st.natsDown, batchOn: a,
			fault: func() error { c.nats.stop(10 * time.Second); return nil },
			restore: func() error {
				if err := c.nats.start(); err != nil {
					return err
				}
				if !c.nats.waitUp(30 * time.Second) {
					return fmt.Errorf("nats-server did not accept connections within 30 s of its restart")
				}
				return nil
			},
		},
		{
			name: "MariaDB SIGKILLed", down: st.dbDown, batchOn: b,
			fault: c.db.kill,
			restore: func() error {
				if err := c.db.start(); err != nil {
					return err
				}
				if !c.db.waitUp(time.Minute) {
					return fmt.Errorf("MariaDB did not answer within a minute of its restart")
				}
				return nil
			},
		},
		{
			name: "MariaDB frozen (SIGSTOP)", down: st.dbFrozen, batchOn: a,
			fault:   func() error { return c.db.signal(syscall.SIGSTOP) },
			restore: func() error { return c.db.signal(syscall.SIGCONT) },
		},
	}
	for _, s := range scenarios {
		s.run(c, st, token, p)
		t.Logf("%s: done in %s", s.name, s.endAt.Sub(s.startAt).Round(100*time.Millisecond))
	}
	p.stop()
	probing = false

	// At rest: every run ends, and the client has every offset.
	if !waitFor(st.settle, func() bool { n, err := c.activeRuns(); return err == nil && n == 0 }) {
		n, _ := c.activeRuns()
		t.Errorf("%d runs were still queued or running %s after the last scenario", n, st.settle)
	}
	newest, err := c.maxOffset()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(20*time.Second, func() bool { return w.lastOffset() >= newest })
	received, connects, drops := w.stop()
	watching = false

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	offsets, err := logOffsets(ctx, c.db.db, c.acct.id)
	if err != nil {
		t.Fatal(err)
	}
	// The comparison covers the log up to the newest offset read at rest;
	// anything written after it had no time to reach the client.
	offsets = upTo(offsets, newest)
	received = upTo(received, newest)
	runs, err := checkRuns(ctx, c.db.db, c.acct.id)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := checkBatches(ctx, c.db.db, c.acct.id)
	if err != nil {
		t.Fatal(err)
	}
	lost, err := nodeLostEvents(ctx, c.db.db, c.acct.id)
	if err != nil {
		t.Fatal(err)
	}
	delivery := checkDelivery(offsets, received)
	samples := p.snapshot()

	// The figures first, then what broke.
	t.Logf("Event Log: %d events checked, %d deliveries over %d connections: lost %d, duplicated %d, out of order %d",
		delivery.checked, delivery.received, connects, delivery.lost, delivery.duplicated, delivery.outOfOrder)
	t.Logf("runs: %d, ended once %d, not ended %d, ended twice %d, ended without an event %d, event disagrees %d, events of unknown runs %d; by state %v",
		runs.runs, runs.ended, runs.notEnded, runs.endedTwice, runs.noEnd, runs.mismatched, runs.strayEnds, runs.byState)
	t.Logf("batches: %d, finished once %d", batches.batches, batches.finished)
	all := make([]figures, len(scenarios))
	for i, s := range scenarios {
		all[i] = s.judge(samples, c, st)
		s.classifyNodeLost(lost, c, &all[i])
		s.report(t, all[i])
	}
	var outside int
	for _, e := range lost {
		in := false
		for _, s := range scenarios {
			in = in || (e.offset > s.startOffset && e.offset <= s.endOffset)
		}
		if !in {
			outside++
		}
	}
	t.Logf("probe requests skipped (too many waiting): %d; wall time %s", p.skippedCount(), time.Since(began).Round(100*time.Millisecond))

	if len(delivery.logGaps) > 0 {
		t.Errorf("the Event Log itself misses offsets, e.g. %v", delivery.logGaps)
	}
	if delivery.lost+delivery.duplicated+delivery.outOfOrder > 0 || delivery.received != delivery.checked {
		t.Errorf("the client did not get every offset once and in order: %s; last drops: %s",
			strings.Join(delivery.firstProblems, "; "), strings.Join(lastN(drops, 5), "; "))
	}
	if runs.ended != runs.runs || runs.strayEnds > 0 {
		t.Errorf("not every run ended exactly once: %s", strings.Join(runs.firstProblems, "; "))
	}
	if batches.finished != batches.batches {
		t.Errorf("not every batch finished exactly once: %s", strings.Join(batches.firstProblems, "; "))
	}
	if outside > 0 {
		t.Errorf("%d node_lost events outside any scenario", outside)
	}
	for i, s := range scenarios {
		s.fail(t, all[i], st, c)
	}
}

// upTo keeps the offsets no greater than newest, in their order.
func upTo(offsets []int64, newest int64) []int64 {
	var out []int64
	for _, o := range offsets {
		if o <= newest {
			out = append(out, o)
		}
	}
	return out
}

func lastN(s []string, n int) []string {
	return s[max(0, len(s)-n):]
}
