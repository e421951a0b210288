package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// scenario is one fault, injected while a batch is in flight and the
// prober and the watcher run.
type scenario struct {
	name string
	// killed names the node the scenario kills; empty when a dependency
	// every node shares fails instead.
	killed string
	// fault breaks something; restore mends it and returns once it can be
	// used again (a restarted node: once its process runs, since its boot
	// is part of its recovery).
	fault, restore func() error
	// down is how long the fault lasts.
	down    time.Duration
	batchOn *node

	// Filled in as it runs.
	startAt, faultAt, returnAt, endAt time.Time
	startOffset, endOffset            int64
	batchID                           string
	// inFlight is how many of the batch's runs had not ended when the
	// fault began.
	inFlight int
	problems []string
}

func (s *scenario) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// run plays the scenario: the system at rest, a batch started and under
// way, the fault, its end, and the system back at rest. Every wait is
// bounded; a wait that runs out is a problem of the scenario, and the
// test goes on to the next one.
func (s *scenario) run(c *cluster, st settings, token string, p *prober) {
	s.startAt = time.Now()
	if !waitFor(30*time.Second, func() bool { return c.nodes[0].ready() && c.nodes[1].ready() }) {
		s.problem("the nodes were not both ready within 30 s of the scenario's start")
	}
	if !waitFor(st.settle, c.panelsLinked) {
		s.problem("the panels were not all linked within %s of the scenario's start", st.settle)
	}
	var err error
	if s.startOffset, err = c.maxOffset(); err != nil {
		s.problem("read the newest offset: %v", err)
	}
	if s.batchID, err = startBatch(s.batchOn, token); err != nil {
		s.problem("start the All Locations batch on %s: %v", s.batchOn.id, err)
	}
	// Under way: some of its runs have ended, so the fault meets a batch
	// with runs finished, running and queued.
	if s.batchID != "" && !waitFor(30*time.Second, func() bool {
		n, err := c.count(`SELECT COUNT(*) FROM runs WHERE batch_id = ? AND state IN ('succeeded', 'failed', 'cancelled')`, s.batchID)
		return err == nil && n >= 10
	}) {
		s.problem("the batch had not ended 10 runs within 30 s")
	}
	if s.batchID != "" {
		s.inFlight, err = c.count(`SELECT COUNT(*) FROM runs WHERE batch_id = ? AND state IN ('queued', 'running')`, s.batchID)
		if err != nil || s.inFlight == 0 {
			s.problem("the batch was not in flight when the fault began: %d runs left (%v)", s.inFlight, err)
		}
	}

	s.faultAt = time.Now()
	if err := s.fault(); err != nil {
		s.problem("fault: %v", err)
	}
	// The outage lasts a set time: its length is what the scenario tests.
	time.Sleep(s.down)
	if err := s.restore(); err != nil {
		s.problem("restore: %v", err)
	}
	s.returnAt = time.Now()

	// Service back: every probe that must recover has answered 2xx since
	// the return, or the bound is past (the report says how long).
	waitFor(st.recoverWithin+st.hangBound, func() bool {
		_, ok := s.recovery(p.snapshot(), c)
		return ok
	})
	if s.batchID != "" && !waitFor(st.settle, func() bool {
		n, err := c.count(`SELECT COUNT(*) FROM batches WHERE id = ? AND state = 'done'`, s.batchID)
		return err == nil && n == 1
	}) {
		s.problem("the batch did not finish within %s of the return", st.settle)
	}
	if !waitFor(st.settle, c.panelsLinked) {
		s.problem("the panels were not all linked again within %s of the return", st.settle)
	}
	if s.endOffset, err = c.maxOffset(); err != nil {
		s.problem("read the newest offset: %v", err)
	}
	s.endAt = time.Now()
}

// mustRecover lists the nodes whose probes must answer 2xx again after
// the return: the killed node, or both when a shared dependency failed.
func (s *scenario) mustRecover(c *cluster) []string {
	if s.killed != "" {
		return []string{s.killed}
	}
	return []string{c.nodes[0].name, c.nodes[1].name}
}

// recovery is how long after the return every probe of the nodes that
// must recover has answered 2xx: the end of the first 2xx answer to a
// request sent after the return, the latest over those probes. ok is
// false while some probe has not answered 2xx yet. What comes after the
// first 2xx is judged by the other rules (a panel wrongly marked
// disconnected shows up as a false node_lost).
func (s *scenario) recovery(samples []sample, c *cluster) (took time.Duration, ok bool) {
	ok = true
	for _, n := range s.mustRecover(c) {
		for _, kind := range []string{"read", "tap"} {
			var first *sample
			for i := range samples {
				x := &samples[i]
				if x.node != n || x.kind != kind || !x.is2xx() || x.at.Before(s.returnAt) {
					continue
				}
				if first == nil || x.at.Add(x.took).Before(first.at.Add(first.took)) {
					first = x
				}
			}
			if first == nil {
				ok = false
				continue
			}
			took = max(took, first.at.Add(first.took).Sub(s.returnAt))
		}
	}
	return took, ok
}

// figures are what one scenario's samples and events show.
type figures struct {
	requests, ok2xx, unavailable, internal, otherServer, client4xx int
	// unreachable counts answers missing from the killed node while it
	// was down, as expected; refused counts answers missing otherwise.
	unreachable, refused, hangs int
	maxLatency                  time.Duration
	recovered                   bool
	recovery                    time.Duration
	nodeLostAllowed             int
	nodeLostFalse               int
	// killedPanelsLost is how many of the killed node's panels were
	// marked disconnected as lost with it.
	killedPanelsLost int
	// answers counts the samples by status and problem code, such as
	// "409 panel_disconnected".
	answers map[string]int
	// violations describe the first samples that broke a rule, by rule.
	violations map[string][]string
	counts     map[string]int
}

func (f *figures) violate(rule string, s sample) {
	if f.violations == nil {
		f.violations, f.counts = map[string][]string{}, map[string]int{}
	}
	f.counts[rule]++
	if len(f.violations[rule]) < 5 {
		f.violations[rule] = append(f.violations[rule], s.String())
	}
}

// judge applies the rules to the samples that started during the
// scenario:
//
//   - never a 5xx other than 503, never a request that takes past the hang
//     bound, never a refused connection except to a killed node while it
//     is down;
//   - while a shared dependency is down, only 2xx or 503, and a 503 says
//     service_unavailable with Retry-After.
func (s *scenario) judge(samples []sample, c *cluster, st settings) figures {
	f := figures{answers: map[string]int{}}
	// The killed node is back once it answers anything after its restart.
	backAt := s.returnAt
	if s.killed != "" {
		backAt = time.Time{}
		for _, x := range samples {
			if x.node == s.killed && !x.at.Before(s.returnAt) && x.status != noAnswer && (backAt.IsZero() || x.at.Before(backAt)) {
				backAt = x.at
			}
		}
		if backAt.IsZero() {
			backAt = s.endAt
		}
	}
	for _, x := range samples {
		if x.at.Before(s.startAt) || !x.at.Before(s.endAt) {
			continue
		}
		f.requests++
		f.maxLatency = max(f.maxLatency, x.took)
		if !x.is2xx() && x.status > 0 {
			f.answers[strings.TrimSpace(fmt.Sprint(x.status, " ", x.code))]++
		}
		down := !x.at.Before(s.faultAt) && x.at.Before(s.returnAt)
		switch {
		case x.is2xx():
			f.ok2xx++
		case x.status == 503:
			f.unavailable++
			if x.code != "service_unavailable" || !x.retryAfter {
				f.violate("503 without code service_unavailable and Retry-After", x)
			}
		case x.status == 500:
			f.internal++
			f.violate("500", x)
		case x.status > 500:
			f.otherServer++
			f.violate("5xx other than 503", x)
		case x.status >= 400:
			f.client4xx++
			if down && s.killed == "" {
				f.violate("not 2xx or 503 while a dependency was down", x)
			}
		case x.status == hung:
			f.hangs++
			f.violate(fmt.Sprintf("no answer within %s", st.hangBound), x)
		case x.status == noAnswer:
			if x.node == s.killed && !x.at.Add(x.took).Before(s.faultAt) && x.at.Before(backAt) {
				f.unreachable++
			} else {
				f.refused++
				f.violate("connection failed", x)
			}
		}
	}
	f.recovery, f.recovered = s.recovery(samples, c)
	return f
}

// classifyNodeLost counts the scenario's panel.disconnected events that
// blame a lost node: allowed for the panels of the node it killed, false
// for any other.
func (s *scenario) classifyNodeLost(events []lostPanelEvent, c *cluster, f *figures) {
	lostPanels := map[string]bool{}
	for _, e := range events {
		if e.offset <= s.startOffset || e.offset > s.endOffset {
			continue
		}
		if s.killed != "" && slices.Contains(c.panelsOf[s.killed], e.locationID) {
			f.nodeLostAllowed++
			lostPanels[e.locationID] = true
			continue
		}
		f.nodeLostFalse++
		if f.nodeLostFalse <= 3 {
			s.problem("false node_lost: offset %d, location %s, at %s (%.1f s after the fault, %.1f s after the return)",
				e.offset, e.locationID, e.at.Format("15:04:05.000"), e.at.Sub(s.faultAt).Seconds(), e.at.Sub(s.returnAt).Seconds())
		}
	}
	f.killedPanelsLost = len(lostPanels)
}

// report prints one scenario's figures.
func (s *scenario) report(t *testing.T, f figures) {
	t.Helper()
	rec := "never"
	if f.recovered {
		rec = f.recovery.Round(10 * time.Millisecond).String()
	}
	var answers []string
	for a, n := range f.answers {
		answers = append(answers, fmt.Sprintf("%s ×%d", a, n))
	}
	slices.Sort(answers)
	t.Logf("%-26s batch runs in flight at the fault %d; down %s; requests %d: 2xx %d, 503 %d, 500 %d, other 5xx %d, 4xx %d, hangs %d, refused %d (killed node down: %d); not 2xx: [%s]; max latency %s; recovered %s after the return; node_lost %d (allowed %d, false %d)",
		s.name, s.inFlight, s.returnAt.Sub(s.faultAt).Round(10*time.Millisecond), f.requests, f.ok2xx, f.unavailable, f.internal, f.otherServer,
		f.client4xx, f.hangs, f.refused, f.unreachable, strings.Join(answers, ", "), f.maxLatency.Round(10*time.Millisecond), rec,
		f.nodeLostAllowed+f.nodeLostFalse, f.nodeLostAllowed, f.nodeLostFalse)
}

// fail reports what broke the scenario's rules.
func (s *scenario) fail(t *testing.T, f figures, st settings, c *cluster) {
	t.Helper()
	for rule, examples := range f.violations {
		t.Errorf("%s: %d requests broke the rule %q, e.g.:\n  %s", s.name, f.counts[rule], rule, strings.Join(examples, "\n  "))
	}
	if !f.recovered {
		t.Errorf("%s: some probe of nodes %v never answered 2xx after the return", s.name, s.mustRecover(c))
	} else if f.recovery > st.recoverWithin {
		t.Errorf("%s: recovered %s after the return, over the bound of %s", s.name, f.recovery.Round(10*time.Millisecond), st.recoverWithin)
	}
	if s.killed != "" && f.killedPanelsLost != len(c.panelsOf[s.killed]) {
		t.Errorf("%s: %d of the killed node's %d panels were marked disconnected as lost with it", s.name, f.killedPanelsLost, len(c.panelsOf[s.killed]))
	}
	if f.nodeLostFalse > 0 {
		t.Errorf("%s: %d false node_lost events (panels of a node that was not killed)", s.name, f.nodeLostFalse)
	}
	for _, p := range s.problems {
		t.Errorf("%s: %s", s.name, p)
	}
}
