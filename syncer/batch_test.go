package syncer_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

type batchJSON struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Total     int    `json:"total"`
	Queued    int    `json:"queued"`
	Running   int    `json:"running"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Cancelled int    `json:"cancelled"`
	Skipped   int    `json:"skipped"`
}

// fleet is a node with one account and n locations, the first linked of
// which have simulated panels.
type fleet struct {
	node   *apptest.Node
	acct   models.Account
	token  string
	locs   []models.LocationView
	creds  []sim.Credentials
	panels []*sim.Panel
}

func newFleet(t *testing.T, node *apptest.Node, name string, n, linked int, opts sim.Options) *fleet {
	t.Helper()
	f := &fleet{node: node}
	f.acct, f.token = node.Account(t, name)
	for i := range n {
		loc, cred := node.Location(t, f.acct.ID, fmt.Sprintf("%s site %02d", name, i))
		f.locs = append(f.locs, loc)
		f.creds = append(f.creds, cred)
		if i < linked {
			p, _ := node.Panel(t, cred, opts)
			f.panels = append(f.panels, p)
		}
	}
	return f
}

func (f *fleet) startBatch(t *testing.T, body map[string]any) batchJSON {
	t.Helper()
	r := f.node.Do(t, "POST", "/v1/sync", f.token, body)
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST /v1/sync: %d %s", r.Status, r.Body)
	}
	var out struct {
		Batch   batchJSON `json:"batch"`
		Message string    `json:"message"`
	}
	r.JSON(t, &out)
	return out.Batch
}

func (f *fleet) waitBatch(t *testing.T, id string) batchJSON {
	t.Helper()
	var b batchJSON
	apptest.Eventually(t, 30*time.Second, func() (bool, string) {
		r := f.node.Do(t, "GET", "/v1/batches/"+id, f.token, nil)
		b = batchJSON{}
		r.JSON(t, &b)
		return b.State == "done", fmt.Sprintf("%+v", b)
	})
	return b
}

func (f *fleet) accountEvents(t *testing.T, typ string) []apptest.Event {
	t.Helper()
	r := f.node.Do(t, "GET", "/v1/events?limit=1000&type="+typ, f.token, nil)
	var page struct {
		Items []apptest.Event `json:"items"`
	}
	r.JSON(t, &page)
	return page.Items
}

func TestBatch_AllLocations_SyncsEachAndCountsThoseThatCannotRun(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			f := newFleet(t, node, "Dealer", 5, 4, sim.Options{Users: 3})
			start := f.startBatch(t, map[string]any{"kind": "users", "scope": "all"})
			if start.Total != 5 || start.State != "running" {
				t.Fatalf("batch at start %+v", start)
			}
			done := f.waitBatch(t, start.ID)
			if done.Succeeded != 4 || done.Failed != 1 || done.Queued != 0 || done.Running != 0 {
				t.Fatalf("finished batch %+v", done)
			}
			// The location without a panel got its own Sync Failure.
			events := node.Events(t, f.token, f.locs[4].Location.ID)
			last := events[len(events)-1]
			if last.Type != "sync.failed" || !strings.Contains(string(last.Data), `"code":"panel_disconnected"`) {
				t.Fatalf("unreachable location's last event %+v", last)
			}
			finished := f.accountEvents(t, "batch.finished")
			if len(finished) != 1 || finished[0].Message != "All locations: 4 succeeded, 1 failed (user sync)" {
				t.Fatalf("batch.finished events %+v", finished)
			}
			if progress := f.accountEvents(t, "batch.progress"); len(progress) > 5 {
				t.Fatalf("%d progress events for a batch of 5: not throttled", len(progress))
			}
			// The batch is finished by its last run, not by the periodic
			// sweep that covers a node lost mid-batch.
			var batch models.Batch
			var lastRun models.Run
			node.Store.DB().Where("id = ?", start.ID).Take(&batch)
			node.Store.DB().Where("batch_id = ?", start.ID).Order("finished_at DESC").Limit(1).Take(&lastRun)
			if gap := batch.FinishedAt.Sub(*lastRun.FinishedAt); gap > 2*time.Second {
				t.Fatalf("batch finished %v after its last run", gap)
			}
		})
	}
}

func TestBatch_ScopesAndBadRequests(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			f := newFleet(t, node, "Scoped", 3, 3, sim.Options{Users: 2})
			group := "North"
			if _, err := node.Store.UpdateLocation(t.Context(), models.SystemActor(f.acct.ID, "test"), f.locs[0].Location.ID, models.LocationSettings{Group: &group}); err != nil {
				t.Fatal(err)
			}
			g := f.waitBatch(t, f.startBatch(t, map[string]any{"kind": "refresh", "scope": "group", "group": "North"}).ID)
			if g.Total != 1 || g.Succeeded != 1 {
				t.Fatalf("group batch %+v", g)
			}
			l := f.waitBatch(t, f.startBatch(t, map[string]any{"kind": "refresh", "scope": "locations", "location_ids": []string{f.locs[1].Location.ID, f.locs[2].Location.ID}}).ID)
			if l.Total != 2 || l.Succeeded != 2 {
				t.Fatalf("locations batch %+v", l)
			}
			other, _ := node.Account(t, "Other")
			foreign, _ := node.Location(t, other.ID, "Theirs")
			for _, tc := range []struct {
				body   map[string]any
				status int
			}{
				{map[string]any{"kind": "users", "scope": "everywhere"}, 400},
				{map[string]any{"kind": "users", "scope": "group"}, 400},
				{map[string]any{"kind": "users", "scope": "group", "group": "Nowhere"}, 400},
				{map[string]any{"kind": "users", "scope": "locations"}, 400},
				{map[string]any{"kind": "users", "scope": "all", "location_ids": []string{f.locs[0].Location.ID}}, 400},
				{map[string]any{"kind": "users", "scope": "locations", "location_ids": []string{foreign.Location.ID}}, 404},
				{map[string]any{"kind": "all", "scope": "all"}, 400},
			} {
				if r := node.Do(t, "POST", "/v1/sync", f.token, tc.body); r.Status != tc.status {
					t.Errorf("%v: %d %s", tc.body, r.Status, r.Body)
				}
			}
			if r := node.Do(t, "GET", "/v1/batches/"+g.ID, node.Login(t, other.ID, models.RoleOwner), nil); r.Status != http.StatusNotFound {
				t.Fatalf("another account's batch: %d", r.Status)
			}
		})
	}
}

func TestBatch_Cancel_StopsRunsNotYetStarted(t *testing.T) {
	tweak := func(c *app.Config) { c.Workers = 1 }
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			tweak(&cfg)
			node := apptest.Start(t, cfg)
			f := newFleet(t, node, "Slow", 6, 6, sim.Options{Users: 2, Latency: 300 * time.Millisecond})
			start := f.startBatch(t, map[string]any{"kind": "users", "scope": "all"})
			apptest.Eventually(t, 10*time.Second, func() (bool, string) {
				r := node.Do(t, "GET", "/v1/batches/"+start.ID, f.token, nil)
				var b batchJSON
				r.JSON(t, &b)
				return b.Running == 1, fmt.Sprintf("%+v", b)
			})
			r := node.Do(t, "POST", "/v1/batches/"+start.ID+"/cancel", f.token, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("cancel: %d %s", r.Status, r.Body)
			}
			done := f.waitBatch(t, start.ID)
			if done.Cancelled < 4 || done.Succeeded+done.Cancelled+done.Failed != 6 {
				t.Fatalf("cancelled batch %+v", done)
			}
			// Every cancelled run's location log says so, once, as a
			// single cancel would: a watcher that saw sync.requested sees
			// how it ended.
			var runs struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			node.Do(t, "GET", "/v1/runs?state=cancelled", f.token, nil).JSON(t, &runs)
			var events struct {
				Items []struct {
					RunID string `json:"run_id"`
					Data  struct {
						BatchID string `json:"batch_id"`
					} `json:"data"`
				} `json:"items"`
			}
			node.Do(t, "GET", "/v1/events?type=sync.cancelled&limit=100", f.token, nil).JSON(t, &events)
			perRun := map[string]int{}
			for _, e := range events.Items {
				if e.Data.BatchID != start.ID {
					t.Fatalf("sync.cancelled without its batch: %+v", e)
				}
				perRun[e.RunID]++
			}
			if len(runs.Items) != done.Cancelled || len(perRun) != done.Cancelled {
				t.Fatalf("%d runs cancelled, %d listed, %d with a sync.cancelled event", done.Cancelled, len(runs.Items), len(perRun))
			}
			for _, r := range runs.Items {
				if perRun[r.ID] != 1 {
					t.Fatalf("run %s has %d sync.cancelled events, want 1", r.ID, perRun[r.ID])
				}
			}
			if r := node.Do(t, "POST", "/v1/batches/"+start.ID+"/cancel", f.token, nil); r.Status != http.StatusConflict {
				t.Fatalf("cancel twice: %d", r.Status)
			}
			// The audit log says which batch was cancelled, in words.
			if e := auditLog(t, node, f.token)[0]; e.Action != "batch.cancel" || e.Target.ID != start.ID || e.Target.Name != "User sync of all locations" {
				t.Fatalf("newest audit entry %+v, want batch.cancel of %s named \"User sync of all locations\"", e, start.ID)
			}
		})
	}
}

// TestFairness_BigBatchDoesNotDelayAnotherAccountsTap fills the queue with
// one account's batch and then taps once for another account: the tap
// runs after at most a few of the batch's runs, not after the batch.
func TestFairness_BigBatchDoesNotDelayAnotherAccountsTap(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.Workers = 2
			cfg.AccountRuns = 2
			node := apptest.Start(t, cfg)
			opts := sim.Options{Users: 2, Latency: 100 * time.Millisecond}
			dealer := newFleet(t, node, "Dealer", 24, 24, opts)
			single := newFleet(t, node, "Homeowner", 1, 1, opts)

			batch := dealer.startBatch(t, map[string]any{"kind": "users", "scope": "all"})
			// Wait until the dealer's runs are queued and running.
			apptest.Eventually(t, 10*time.Second, func() (bool, string) {
				r := node.Do(t, "GET", "/v1/batches/"+batch.ID, dealer.token, nil)
				var st batchJSON
				r.JSON(t, &st)
				return st.Running > 0 && st.Queued > 15, fmt.Sprintf("%+v", st)
			})
			tap := node.Sync(t, single.token, single.locs[0].Location.ID, "users")
			run := node.WaitRun(t, single.token, tap.Run.ID)
			if run.State != "succeeded" {
				t.Fatalf("tap %+v", run)
			}
			r := node.Do(t, "GET", "/v1/batches/"+batch.ID, dealer.token, nil)
			var st batchJSON
			r.JSON(t, &st)
			if finished := st.Succeeded + st.Failed; finished > 8 {
				t.Fatalf("the single tap waited for %d of the dealer's runs: %+v", finished, st)
			}
			dealer.waitBatch(t, batch.ID)
		})
	}
}

// twoNodes starts two nodes on one database of backend b.
func twoNodes(t *testing.T, b dbtest.Backend) (*apptest.Node, *apptest.Node) {
	t.Helper()
	cfg := apptest.Config(t, b)
	// The nodes share one bus, as a deployment's nodes do, so either can
	// reach a panel linked to the other; with a bus each, a run that the
	// other node claimed would find the panel unreachable.
	cfg.NATSURL = sharedBus(t)
	nodeA := apptest.Start(t, cfg)
	return nodeA, apptest.Start(t, peerConfig(t, b, cfg))
}

// peerConfig is the configuration of another node beside the one cfg
// starts, on the same database.
func peerConfig(t *testing.T, b dbtest.Backend, cfg app.Config) app.Config {
	t.Helper()
	peer := cfg
	peer.DataDir = t.TempDir()
	peer.JWTSecret, peer.CodeDigestKey = "", ""
	if b.Name == "sqlite" {
		// The nodes share one database file.
		peer.DataDir = cfg.DataDir
	}
	return peer
}

// sharedBus runs a NATS server on a free loopback port until the test
// ends and returns its URL.
func sharedBus(t *testing.T) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("the test's NATS server did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

func TestSchedules_DueLocationsSyncOnceEvenAfterDowntimeAndAcrossNodes(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			nodeA, nodeB := twoNodes(t, b)
			f := newFleet(t, nodeA, "Scheduled", 3, 3, sim.Options{Users: 2})
			db := nodeA.Store.DB()
			now := time.Now().UTC()
			// Location 0 missed a week of daily schedules while the nodes
			// were down; location 1 is due now; location 2 is not due.
			set := func(i int, at time.Time) {
				if err := db.Model(&models.Location{}).Where("id = ?", f.locs[i].Location.ID).Update("next_scheduled_at", at).Error; err != nil {
					t.Fatal(err)
				}
			}
			set(0, now.Add(-7*24*time.Hour))
			set(1, now.Add(-time.Second))
			set(2, now.Add(12*time.Hour))
			// Every other location (the other fleets' none here) is not due.

			var wg sync.WaitGroup
			for _, n := range []*apptest.Node{nodeA, nodeB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := n.App.Engine().RunDueSchedules(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for i := range 3 {
				var runs []models.Run
				db.Where("location_id = ? AND trigger_source = ?", f.locs[i].Location.ID, models.TriggerSchedule).Find(&runs)
				want := map[int]int{0: 1, 1: 1, 2: 0}[i]
				if len(runs) != want {
					t.Fatalf("location %d has %d scheduled runs, want %d", i, len(runs), want)
				}
				requested := 0
				for _, e := range nodeA.Events(t, f.token, f.locs[i].Location.ID) {
					if e.Type == "sync.requested" && strings.Contains(string(e.Data), `"trigger":"schedule"`) {
						requested++
					}
				}
				if requested != want {
					t.Fatalf("location %d has %d sync.requested events, want %d", i, requested, want)
				}
			}
			for i := range 2 {
				v, _ := nodeA.Store.LocationByID(t.Context(), f.locs[i].Location.ID)
				next := v.Location.NextScheduledAt.Sub(now)
				if next < 21*time.Hour || next > 27*time.Hour {
					t.Fatalf("location %d next scheduled in %v, want about a day", i, next)
				}
			}
			// Running again finds nothing due.
			if n, err := nodeB.App.Engine().RunDueSchedules(t.Context()); err != nil || n != 0 {
				t.Fatalf("second pass started %d (%v)", n, err)
			}
		})
	}
}

func TestForceSync_RunsFullAtNextCheckinAndClearsOnSuccess(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 4}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		// The panel's first link synced its users and left a watermark, so
		// a plain sync would be incremental.
		first := n.FirstSync(t, token, locID)

		r := n.Do(t, "POST", "/v1/locations/"+locID+"/force-sync", token, nil)
		if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), "Users will sync on next check-in") {
			t.Fatalf("force-sync: %d %s", r.Status, r.Body)
		}
		loc := n.Do(t, "GET", "/v1/locations/"+locID, token, nil)
		if !strings.Contains(string(loc.Body), `"force_pending":true`) {
			t.Fatalf("location after force: %s", loc.Body)
		}
		events := n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Type != "sync.force_requested" {
			t.Fatalf("last event %+v", last)
		}
		if entries, _, _ := n.Store.ListAudit(t.Context(), models.AuditQuery{AccountID: tb.acct.ID, Limit: 5}); len(entries) == 0 || entries[0].Action != "location.force_sync" {
			t.Fatalf("audit %+v", entries)
		}

		if err := tb.panel.SendCheckin(); err != nil {
			t.Fatal(err)
		}
		var run models.Run
		apptest.Eventually(t, 10*time.Second, func() (bool, string) {
			err := n.Store.DB().Where("location_id = ? AND trigger_source = ? AND id <> ?", locID, models.TriggerCheckin, first.ID).Take(&run).Error
			return err == nil, "no check-in run yet"
		})
		done := n.WaitRun(t, token, run.ID)
		if done.State != "succeeded" || done.Mode != "full" || done.Trigger != "checkin" || done.RequestedBy != "check-in" {
			t.Fatalf("check-in run %+v", done)
		}
		requested := ""
		for _, e := range n.Events(t, token, locID) {
			if e.RunID != nil && *e.RunID == done.ID && e.Type == "sync.requested" {
				requested = e.Message
			}
		}
		if requested != "The panel checked in: running the full user sync requested for its next check-in" {
			t.Fatalf("the check-in run's sync.requested says %q", requested)
		}
		loc = n.Do(t, "GET", "/v1/locations/"+locID, token, nil)
		if !strings.Contains(string(loc.Body), `"force_pending":false`) {
			t.Fatalf("the flag did not clear after the full sync: %s", loc.Body)
		}

		// A manual sync while a force is pending runs in full too.
		n.Do(t, "POST", "/v1/locations/"+locID+"/force-sync", token, nil)
		if manual := n.Sync(t, token, locID, "users"); manual.Run.Mode != "full" {
			t.Fatalf("manual sync while forced: %+v", manual.Run)
		}
		member := n.Login(t, tb.acct.ID, models.RoleMember)
		if r := n.Do(t, "POST", "/v1/locations/"+locID+"/force-sync", member, nil); r.Status != http.StatusForbidden {
			t.Fatalf("member force-sync: %d", r.Status)
		}
	})
}

// TestForceSync_FlaggedOnAnotherNode_RunsAtACheckInOnThePanelsNode: the
// node holding the panel learns of a flag set through another node, and a
// check-in there starts the full sync.
func TestForceSync_FlaggedOnAnotherNode_RunsAtACheckInOnThePanelsNode(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			nodeA, nodeB := twoNodes(t, b)
			acct, token := nodeA.Account(t, "Acme Alarms")
			loc, cred := nodeA.Location(t, acct.ID, "Main Street")
			locID := loc.Location.ID
			panel, _ := nodeA.Panel(t, cred, sim.Options{Users: 2})
			first := nodeA.FirstSync(t, token, locID)
			checkinRuns := func() []models.Run {
				var runs []models.Run
				if err := nodeA.Store.DB().Where("location_id = ? AND trigger_source = ? AND id <> ?", locID, models.TriggerCheckin, first.ID).Find(&runs).Error; err != nil {
					t.Fatal(err)
				}
				return runs
			}
			r := nodeB.Do(t, "POST", "/v1/locations/"+locID+"/force-sync", nodeB.Login(t, acct.ID, models.RoleAdmin), nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("force-sync through node B: %d %s", r.Status, r.Body)
			}
			var run models.Run
			apptest.Eventually(t, 15*time.Second, func() (bool, string) {
				if err := panel.SendCheckin(); err != nil {
					return false, err.Error()
				}
				runs := checkinRuns()
				if len(runs) == 0 {
					return false, "no check-in run on node A yet"
				}
				run = runs[0]
				return true, ""
			})
			if run.Kind != models.RunUsers || run.Mode != models.ModeFull {
				t.Fatalf("the check-in run is a %s %s sync, want a full users sync", run.Mode, run.Kind)
			}
		})
	}
}

func TestForceSync_Scope_FlagsEveryLocation(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			node := apptest.Start(t, apptest.Config(t, b))
			f := newFleet(t, node, "Forced", 3, 0, sim.Options{})
			r := node.Do(t, "POST", "/v1/force-sync", f.token, map[string]any{"scope": "all"})
			if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), `"flagged":3`) {
				t.Fatalf("force all: %d %s", r.Status, r.Body)
			}
			if got := f.accountEvents(t, "sync.force_requested"); len(got) != 3 {
				t.Fatalf("%d force events", len(got))
			}
		})
	}
}
