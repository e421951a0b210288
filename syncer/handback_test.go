package syncer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// handBackSetup is a deployment for the hand-back tests: a node that
// serves rank 0 only (it never claims the location's runs, which are of
// rank 1), an account with a location whose panel has linked and synced,
// and a way to start nodes that serve rank 1.
type handBackSetup struct {
	holder *apptest.Node
	token  string
	loc    models.LocationView
	cred   sim.Credentials
	worker func() *apptest.Node
}

// newHandBackSetup starts the rank-0 node on b; the panel links to the
// node that linkTo returns, called once the rank-1 nodes can be started.
// Leases and command timeouts are long (30 s), so that a run the tests
// see finish in seconds was not left to a lease or a timeout.
func newHandBackSetup(t *testing.T, b dbtest.Backend, linkTo func(s *handBackSetup) *apptest.Node) (*handBackSetup, *sim.Panel, func()) {
	t.Helper()
	cfg := apptest.Config(t, b)
	cfg.NATSURL = sharedBus(t)
	cfg.RunLease = 30 * time.Second
	cfg.CommandTimeout = 30 * time.Second
	s := &handBackSetup{holder: apptest.Start(t, cfg)}
	s.worker = func() *apptest.Node {
		c := peerConfig(t, b, cfg)
		c.Ranks = "1"
		return apptest.Start(t, c)
	}
	var acct models.Account
	acct, s.token = s.holder.Account(t, "Acme Alarms")
	s.loc, s.cred = s.holder.Location(t, acct.ID, "Main Street")
	p, stopPanel := linkTo(s).Panel(t, s.cred, sim.Options{Users: 3})
	r := s.holder.Do(t, "PATCH", "/v1/locations/"+s.loc.Location.ID, s.token, map[string]any{"rank": 1})
	if r.Status != http.StatusOK {
		t.Fatalf("set rank: %d %s", r.Status, r.Body)
	}
	return s, p, stopPanel
}

// runRow reads the run as stored, lease and takeovers included.
func runRow(t *testing.T, n *apptest.Node, id string) models.Run {
	t.Helper()
	r, err := n.Store.RunForWorker(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitMidCommand waits until node holds the run and the panel has
// ignored at least ignored commands (while it is unresponsive).
func waitMidCommand(t *testing.T, node *apptest.Node, p *sim.Panel, runID string, ignored int) {
	t.Helper()
	apptest.Eventually(t, 20*time.Second, func() (bool, string) {
		r := runRow(t, node, runID)
		if r.State != models.RunRunning || r.LeaseOwner != node.App.NodeID() {
			return false, fmt.Sprintf("run is %s under %q", r.State, r.LeaseOwner)
		}
		return p.Stats().Ignored >= int64(ignored), fmt.Sprintf("the panel ignored %d commands", p.Stats().Ignored)
	})
}

// TestShutdown_NodesStoppedMidRun_HandTheRunBackAndTheNextFinishesItAtOnce
// stops three nodes in a row while each waits for the panel, as a rolling
// restart does: each hands the run back at once rather than keeping it
// for its 30 s lease, the next node takes it, no interruption counts as
// an attempt, and the last node finishes it within seconds of the stop.
func TestShutdown_NodesStoppedMidRun_HandTheRunBackAndTheNextFinishesItAtOnce(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s, p, _ := newHandBackSetup(t, b, func(s *handBackSetup) *apptest.Node { return s.holder })
			locID := s.loc.Location.ID
			// The panel is slow, so each node is stopped while it waits
			// for it. It answers in the end: the node holding its link
			// sends it one command at a time, and the next node's command
			// waits for the answer to the one before.
			p.SetLatency(3 * time.Second)
			node := s.worker()
			run := s.holder.Sync(t, s.token, locID, "users").Run

			var stoppedAt time.Time
			for i := range 3 {
				waitMidCommand(t, node, p, run.ID, 0)
				next := s.worker()
				if i == 2 {
					p.SetLatency(0)
				}
				stoppedAt = time.Now()
				node.Stop()
				node = next
			}
			finished := s.holder.WaitRun(t, s.token, run.ID)
			if took := time.Since(stoppedAt); took > 12*time.Second {
				t.Errorf("the run finished %v after the last stop; the lease is 30 s", took)
			}
			if finished.State != "succeeded" || finished.Attempt != 1 || finished.Error != nil {
				t.Fatalf("run after three hand-backs: %+v", finished)
			}
			if r := runRow(t, s.holder, run.ID); r.LeaseOwner != node.App.NodeID() || r.Takeovers != 0 {
				t.Fatalf("finished by %q with %d takeovers; want the last node, none", r.LeaseOwner, r.Takeovers)
			}
			if got := apptest.EventsOfRun(s.holder.Events(t, s.token, locID), run.ID); fmt.Sprint(got) != "[sync.requested sync.succeeded]" {
				t.Fatalf("events %v", got)
			}
		})
	}
}

// TestShutdown_PanelLinkedToTheStoppingNode_RunHandedBackNotFailed stops
// the node that both runs the sync and holds its panel's link: the node
// stops its workers before it closes the links, so the run is handed back
// uncounted rather than failing, or retrying, as "panel not connected".
func TestShutdown_PanelLinkedToTheStoppingNode_RunHandedBackNotFailed(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			var node *apptest.Node
			s, p, stopPanel := newHandBackSetup(t, b, func(s *handBackSetup) *apptest.Node {
				node = s.worker()
				return node
			})
			locID := s.loc.Location.ID
			p.SetUnresponsive(true)
			run := s.holder.Sync(t, s.token, locID, "users").Run
			waitMidCommand(t, node, p, run.ID, 1)
			node.Stop()

			r := runRow(t, s.holder, run.ID)
			if r.State != models.RunQueued || r.Attempt != 0 || r.LeaseOwner != "" || r.ErrorCode != "" || r.AvailableAt.After(time.Now()) {
				t.Fatalf("run after its node stopped: state %s, attempt %d, owner %q, error %q, due %v",
					r.State, r.Attempt, r.LeaseOwner, r.ErrorCode, r.AvailableAt)
			}

			// The panel links again elsewhere, and a node of the rank
			// finishes the run on its first attempt.
			stopPanel()
			p.SetUnresponsive(false)
			s.holder.RunPanel(t, p)
			s.worker()
			finished := s.holder.WaitRun(t, s.token, run.ID)
			if finished.State != "succeeded" || finished.Attempt != 1 {
				t.Fatalf("run %+v", finished)
			}
			if got := apptest.EventsOfRun(s.holder.Events(t, s.token, locID), run.ID); fmt.Sprint(got) != "[sync.requested sync.succeeded]" {
				t.Fatalf("events %v", got)
			}
		})
	}
}

// TestTakeovers_RunThatKillsEveryNode_FailsWorkerLostAtTheBound plays a
// run whose nodes all die while running it: five nodes take it in turn
// (one claim, four takeovers after their leases ran out) without counting
// an attempt, and the live node that would take it over a fifth time
// fails it worker_lost instead of running it.
func TestTakeovers_RunThatKillsEveryNode_FailsWorkerLostAtTheBound(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 2}, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		n, store := tb.node, tb.node.Store
		now := time.Now().UTC()
		run := enqueueForDeadWorkers(t, tb, now)
		at := now.Add(time.Hour)
		for i := range 5 {
			lease := at.Add(time.Second)
			if i == 4 {
				// The last dead node's lease has run out already.
				lease = now.Add(-time.Minute)
			}
			claimed, err := store.ClaimRuns(ctx, fmt.Sprintf("dead-%d", i), 1, at, lease, 0, nil)
			if err != nil || len(claimed) != 1 || claimed[0].ID != run.ID {
				t.Fatalf("dead node %d claim: %v %v", i, claimed, err)
			}
			at = at.Add(2 * time.Second)
		}
		if r := runRow(t, n, run.ID); r.Attempt != 1 || r.Takeovers != 4 {
			t.Fatalf("after four takeovers: attempt %d, takeovers %d; want 1, 4", r.Attempt, r.Takeovers)
		}

		n.App.Engine().Wake()
		finished := n.WaitRun(t, tb.token, run.ID)
		want := "gave up after the server running the sync stopped answering 5 times"
		if finished.State != "failed" || finished.Attempt != 1 || finished.Error == nil ||
			finished.Error.Code != "worker_lost" || finished.Error.Message != want {
			t.Fatalf("poison run %+v", finished)
		}
		failed := eventOfRun(t, n.Events(t, tb.token, tb.loc.Location.ID), run.ID, "sync.failed")
		if !strings.Contains(failed.Message, want) {
			t.Fatalf("Sync Failure says %q", failed.Message)
		}
	})
}

// TestPanic_WhileFinishingARun_FailsItInternalAndTheNodeCarriesOn breaks
// the step that finishes a run, after its changes are applied: the run is
// a Sync Failure with code internal, in words that give nothing of the
// panic away; what it applied is rolled back; the panic is logged with
// its stack; and the node's next run succeeds.
func TestPanic_WhileFinishingARun_FailsItInternalAndTheNodeCarriesOn(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			logs := &apptest.Buffer{}
			n := apptest.StartLogged(t, apptest.Config(t, b), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})))
			acct, token := n.Account(t, "Acme Alarms")
			loc, cred := n.Location(t, acct.ID, "Main Street")
			p, _ := n.Panel(t, cred, sim.Options{Users: 3})
			locID := loc.Location.ID
			if err := p.PutUser(panel.User{Number: 61, Name: "Night Guard", Authority: panel.AuthorityStandard, Partitions: []int{1}}); err != nil {
				t.Fatal(err)
			}

			engine := n.App.Engine()
			engine.SetBeforeSettle(func(r models.Run) { panic("settle blew up in run " + r.ID) })
			t.Cleanup(func() { engine.SetBeforeSettle(nil) })
			run := n.Sync(t, token, locID, "users").Run
			finished := n.WaitRun(t, token, run.ID)
			if finished.State != "failed" || finished.Error == nil || finished.Error.Code != "internal" ||
				finished.Error.Message != "the sync failed on an internal error" {
				t.Fatalf("panicked run %+v", finished)
			}
			failed := eventOfRun(t, n.Events(t, token, locID), run.ID, "sync.failed")
			if strings.Contains(failed.Message, "blew up") || strings.Contains(string(failed.Data), "blew up") ||
				!strings.Contains(failed.Message, "internal error") {
				t.Fatalf("Sync Failure %q %s", failed.Message, failed.Data)
			}
			users, err := n.Store.PanelUsers(context.Background(), locID)
			if err != nil || len(users) != 3 {
				t.Fatalf("remote copy has %d users (%v); the panicked run's changes must be rolled back", len(users), err)
			}
			apptest.Eventually(t, 10*time.Second, func() (bool, string) {
				got := logs.String()
				return strings.Contains(got, "level=ERROR") && strings.Contains(got, "run panicked") &&
					strings.Contains(got, "settle blew up") && strings.Contains(got, "goroutine"), "no panic logged with a stack: " + got
			})

			engine.SetBeforeSettle(nil)
			next := n.WaitRun(t, token, n.Sync(t, token, locID, "users").Run.ID)
			if next.State != "succeeded" || next.Changes.Added != 1 {
				t.Fatalf("the next run %+v", next)
			}
		})
	}
}
