package syncer_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// The tests in this file cover the users syncs a panel starts by what it
// reports over its link: its first connection, and users changed at its
// keypad.

// countEvents counts the location's events of type typ.
func countEvents(t *testing.T, tb *testBundle, typ string) int {
	t.Helper()
	n := 0
	for _, e := range tb.node.Events(t, tb.token, tb.loc.Location.ID) {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// waitEvents waits until the location has at least want events of type
// typ.
func waitEvents(t *testing.T, tb *testBundle, typ string, want int) {
	t.Helper()
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		got := countEvents(t, tb, typ)
		return got >= want, fmt.Sprintf("%d %s events, want %d", got, typ, want)
	})
}

// checkinsRecorded reads how many check-ins the node has recorded, with a
// new status or not, from its metrics.
func checkinsRecorded(t *testing.T, n *apptest.Node) int {
	t.Helper()
	total := 0
	for line := range strings.SplitSeq(grepLines(scrape(t, n), "panelsync_panel_checkins_total{"), "\n") {
		_, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// keypadRuns returns the location's users runs that keypad changes
// started, newest first.
func keypadRuns(t *testing.T, tb *testBundle) []apptest.Run {
	t.Helper()
	var out []apptest.Run
	for _, r := range runsAt(t, tb) {
		if r.Kind == "users" && r.Trigger == "checkin" && r.RequestedBy == "keypad change" {
			out = append(out, r)
		}
	}
	return out
}

// waitKeypadRun waits for the want-th run that keypad changes started at
// the location and returns it once it has settled.
func waitKeypadRun(t *testing.T, tb *testBundle, want int) apptest.Run {
	t.Helper()
	var runs []apptest.Run
	apptest.Eventually(t, 20*time.Second, func() (bool, string) {
		runs = keypadRuns(t, tb)
		return len(runs) >= want, fmt.Sprintf("%d keypad runs, want %d", len(runs), want)
	})
	return tb.node.WaitRun(t, tb.token, runs[len(runs)-want].ID)
}

// changeDue returns when the location's keypad changes are due for a sync,
// or nil when none waits.
func changeDue(t *testing.T, tb *testBundle) *time.Time {
	t.Helper()
	v, err := tb.node.Store.LocationByID(t.Context(), tb.loc.Location.ID)
	if err != nil {
		t.Fatal(err)
	}
	return v.Location.UsersChangeDueAt
}

// waitDue waits until a keypad change at the location waits for a sync,
// and returns when it is due. The link records a panel.user_changed event
// before the engine hears of it, so the event alone does not say that.
func waitDue(t *testing.T, tb *testBundle) time.Time {
	t.Helper()
	var due *time.Time
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		due = changeDue(t, tb)
		return due != nil, "no keypad change waits for a sync"
	})
	return *due
}

// waitPast waits until the location's keypad changes are due, and returns
// when that was.
func waitPast(t *testing.T, tb *testBundle) time.Time {
	t.Helper()
	due := waitDue(t, tb)
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		return time.Now().After(due), "the keypad change is not due yet"
	})
	return due
}

// assertWaitsQuietly checks that the location's due keypad change waits:
// a pass of the schedule loop starts nothing, the location's runs are
// still wantRuns (newest first) and no sync failed.
func assertWaitsQuietly(t *testing.T, tb *testBundle, wantRuns ...string) {
	t.Helper()
	for range 3 {
		if started, err := tb.node.App.Engine().RunDueUsersChanges(t.Context()); err != nil || started != 0 {
			t.Fatalf("a pass while the keypad change waits started %d (%v)", started, err)
		}
	}
	if runs := runIDs(runsAt(t, tb)); fmt.Sprint(runs) != fmt.Sprint(wantRuns) {
		t.Fatalf("runs while the keypad change waits %v, want %v", runs, wantRuns)
	}
	if failed := countEvents(t, tb, "sync.failed"); failed != 0 {
		t.Fatalf("%d sync.failed events while the keypad change waited", failed)
	}
}

func TestFirstLink_NewLocation_SyncsItsUsersInFull_AReconnectionStartsNone(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 7}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		if first.State != "succeeded" || first.Kind != "users" || first.Mode != "full" || first.Trigger != "checkin" ||
			first.RequestedBy != "first connection" || first.Changes.Added != 7 {
			t.Fatalf("first sync %+v, want a full users sync with trigger checkin that added the panel's 7 users", first)
		}
		if got := remoteUsers(t, tb); got != 7 {
			t.Fatalf("the remote copy holds %d users after the first link, want 7", got)
		}
		requested := eventOfRun(t, n.Events(t, token, locID), first.ID, "sync.requested")
		if requested.Message != "The panel connected for the first time: reading all its users" ||
			!strings.Contains(string(requested.Data), `"trigger":"checkin"`) || !strings.Contains(string(requested.Data), `"mode":"full"`) {
			t.Fatalf("sync.requested %+v", requested)
		}

		// The panel comes back: a known panel reconnecting starts nothing.
		tb.stop()
		n.WaitPanel(t, locID, models.PanelDisconnected)
		checkins := checkinsRecorded(t, n)
		p := sim.NewPanel(tb.cred, sim.Options{Users: 7})
		n.RunPanel(t, p)
		// The engine hears of a connection before the link reads the
		// panel's first frame, so once a check-in on the new link is
		// recorded, whatever the connection started has been written. It
		// reports the status stored, so the node counts it but writes no
		// event.
		if err := p.SendCheckin(); err != nil {
			t.Fatal(err)
		}
		apptest.Eventually(t, 10*time.Second, func() (bool, string) {
			got := checkinsRecorded(t, n)
			return got > checkins, fmt.Sprintf("%d check-ins recorded, want more than the %d before the reconnection", got, checkins)
		})
		if runs := runIDs(runsAt(t, tb)); fmt.Sprint(runs) != fmt.Sprint([]string{first.ID}) {
			t.Fatalf("runs after a reconnection %v, want only the first sync %s", runs, first.ID)
		}
	})
}

func TestFirstLink_ConnectionsRacing_StartOneRun(t *testing.T) {
	// The run's panel answers nowhere, so its first attempt fails at once;
	// the long retry wait keeps it queued while the connections race.
	tweak := func(c *app.Config) { c.RetryBase = 10 * time.Second }
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			tweak(&cfg)
			n := apptest.Start(t, cfg)
			acct, token := n.Account(t, "Racing")
			loc, _ := n.Location(t, acct.ID, "Twin Links")
			ctx := context.Background()
			if _, err := n.Store.MarkPanelConnected(ctx, loc.Panel.ID, "test-link", n.App.NodeID(), time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			p, err := n.Store.PanelByID(ctx, loc.Panel.ID)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n.App.Engine().PanelLinked(ctx, p.ID, p.LocationID)
				}()
			}
			wg.Wait()
			var runs []models.Run
			if err := n.Store.DB().Where("location_id = ?", loc.Location.ID).Find(&runs).Error; err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0].Kind != models.RunUsers || runs[0].Mode != models.ModeFull || runs[0].TriggerSource != models.TriggerCheckin {
				t.Fatalf("%d runs after eight links at once (%+v), want one full users run", len(runs), runs)
			}
			requested := 0
			for _, e := range n.Events(t, token, loc.Location.ID) {
				if e.Type == "sync.requested" {
					requested++
				}
			}
			if requested != 1 {
				t.Fatalf("%d sync.requested events, want 1", requested)
			}
		})
	}
}

func TestKeypadChanges_BurstWithinTheDelay_StartOneIncrementalSync(t *testing.T) {
	tweak := func(c *app.Config) { c.UserChangeDelay = time.Second }
	// Thirty users, so that what the burst updates and removes stays
	// under the safety threshold.
	forEachBackend(t, tweak, sim.Options{Users: 30}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		users := tb.panel.Users()
		// Five edits at the keypad, one after the other: three renamed,
		// one removed, one added.
		for i, idx := range []int{2, 3, 5} {
			u := users[idx]
			u.Name = fmt.Sprintf("Renamed At Keypad %d", i)
			if err := tb.panel.PutUser(u); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.panel.RemoveUser(users[7].Number); err != nil {
			t.Fatal(err)
		}
		added := panel.User{Number: 80, Name: "New Cleaner", Authority: panel.AuthorityGuest, Partitions: []int{1}}
		if err := tb.panel.PutUser(added); err != nil {
			t.Fatal(err)
		}
		waitEvents(t, tb, "panel.user_changed", 5)

		run := waitKeypadRun(t, tb, 1)
		if run.State != "succeeded" || run.Mode != "incremental" || run.Trigger != "checkin" ||
			run.Changes.Added != 1 || run.Changes.Updated != 3 || run.Changes.Removed != 1 {
			t.Fatalf("keypad sync %+v, want one incremental run with 1 added, 3 updated, 1 removed", run)
		}
		changes := n.Do(t, "GET", "/v1/runs/"+run.ID+"/changes", token, nil)
		for _, want := range []string{`"action":"added","number":80`, `"action":"removed","number":` + fmt.Sprint(users[7].Number), `"to":"Renamed At Keypad 2"`} {
			if !strings.Contains(string(changes.Body), want) {
				t.Errorf("changes lack %s: %s", want, changes.Body)
			}
		}
		if msg := eventOfRun(t, n.Events(t, token, locID), run.ID, "sync.requested").Message; msg != "Users were changed at the panel's keypad: reading the changes" {
			t.Fatalf("sync.requested message %q", msg)
		}
		// The burst gave this one run and nothing waits for another.
		if runs := keypadRuns(t, tb); len(runs) != 1 {
			t.Fatalf("%d keypad runs, want 1: %+v", len(runs), runs)
		}
		if due := changeDue(t, tb); due != nil {
			t.Fatalf("a keypad change still waits (due %v) after its sync", due)
		}
	})
}

func TestKeypadChange_ThenATap_TheTapTakesTheChangeOver(t *testing.T) {
	// The delay outlasts the test: only the tap can sync the change.
	tweak := func(c *app.Config) { c.UserChangeDelay = time.Minute }
	forEachBackend(t, tweak, sim.Options{Users: 10}, func(t *testing.T, tb *testBundle) {
		u := tb.panel.Users()[1]
		u.Name = "Renamed Before The Tap"
		if err := tb.panel.PutUser(u); err != nil {
			t.Fatal(err)
		}
		waitEvents(t, tb, "panel.user_changed", 1)
		waitDue(t, tb)
		res := tb.node.Sync(t, tb.token, tb.loc.Location.ID, "users")
		if due := changeDue(t, tb); due != nil {
			t.Fatalf("the change still waits (due %v) once a users run is queued to read the panel", due)
		}
		run := tb.node.WaitRun(t, tb.token, res.Run.ID)
		if run.State != "succeeded" || run.Trigger != "app" || run.Changes.Updated != 1 {
			t.Fatalf("tap %+v, want it to sync the keypad change", run)
		}
		if runs := keypadRuns(t, tb); len(runs) != 0 {
			t.Fatalf("keypad runs %+v, want none", runs)
		}
	})
}

func TestKeypadChange_WhileAUsersRunIsHeld_WaitsQuietlyUntilApplied(t *testing.T) {
	tweak := func(c *app.Config) {
		c.UserChangeDelay = 300 * time.Millisecond
		c.ScheduleTick = 100 * time.Millisecond
	}
	forEachBackend(t, tweak, sim.Options{Users: 10}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"auto_apply": false})
		users := tb.panel.Users()
		if err := tb.panel.RemoveUser(users[1].Number); err != nil {
			t.Fatal(err)
		}
		held := waitKeypadRun(t, tb, 1)
		if held.State != "awaiting_apply" || held.Changes.Removed != 1 {
			t.Fatalf("keypad sync with auto apply off %+v, want it held with 1 removed", held)
		}

		// A change while that run is held waits for it: no run, no
		// failure, however often the schedule loop looks.
		renamed := users[2]
		renamed.Name = "Renamed While Held"
		if err := tb.panel.PutUser(renamed); err != nil {
			t.Fatal(err)
		}
		waitEvents(t, tb, "panel.user_changed", 2)
		due := waitPast(t, tb)
		assertWaitsQuietly(t, tb, held.ID, first.ID)
		if s := locationStatus(t, tb); s != "held" {
			t.Fatalf("location status %q, want held", s)
		}
		if still := changeDue(t, tb); still == nil || !still.Equal(due) {
			t.Fatalf("due time %v while held, want it kept at %v", still, due)
		}

		// Once the held run is applied, the waiting change syncs.
		settle(t, tb, map[string]any{"auto_apply": true})
		if r := n.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", token, nil); r.Status != http.StatusOK {
			t.Fatalf("apply: %d %s", r.Status, r.Body)
		}
		after := waitKeypadRun(t, tb, 2)
		if after.State != "succeeded" || after.Changes.Updated != 1 || after.Changes.Removed != 0 {
			t.Fatalf("sync of the waiting change %+v, want it succeeded with 1 updated", after)
		}
		if due := changeDue(t, tb); due != nil {
			t.Fatalf("a keypad change still waits (due %v) after its sync", due)
		}
	})
}

func TestKeypadChange_PanelOfflineWhenDue_WaitsForItsReturn(t *testing.T) {
	tweak := func(c *app.Config) {
		c.UserChangeDelay = 2 * time.Second
		c.ScheduleTick = 100 * time.Millisecond
	}
	forEachBackend(t, tweak, sim.Options{Users: 6}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		u := tb.panel.Users()[3]
		u.Name = "Renamed Then Unplugged"
		if err := tb.panel.PutUser(u); err != nil {
			t.Fatal(err)
		}
		waitEvents(t, tb, "panel.user_changed", 1)
		waitDue(t, tb)
		tb.stop()
		n.WaitPanel(t, locID, models.PanelDisconnected)

		waitPast(t, tb)
		assertWaitsQuietly(t, tb, first.ID)

		// The same panel comes back, with the change still on it.
		n.RunPanel(t, tb.panel)
		run := waitKeypadRun(t, tb, 1)
		if run.State != "succeeded" || run.Changes.Updated != 1 {
			t.Fatalf("keypad sync after the panel returned %+v, want 1 updated", run)
		}
	})
}

func TestKeypadChanges_DueOnTwoNodes_StartOneRunEach(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			nodeA, nodeB := twoNodes(t, b)
			f := newFleet(t, nodeA, "Keypads", 3, 3, sim.Options{Users: 2})
			db := nodeA.Store.DB()
			// Locations 0 and 1 have keypad changes due; location 2 has
			// one due later.
			now := time.Now().UTC()
			for i, at := range []time.Time{now.Add(-time.Second), now.Add(-time.Minute), now.Add(time.Hour)} {
				if err := db.Model(&models.Location{}).Where("id = ?", f.locs[i].Location.ID).Update("users_change_due_at", at).Error; err != nil {
					t.Fatal(err)
				}
			}

			var wg sync.WaitGroup
			for _, n := range []*apptest.Node{nodeA, nodeB, nodeA, nodeB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := n.App.Engine().RunDueUsersChanges(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for i, want := range []int{1, 1, 0} {
				var runs []models.Run
				db.Where("location_id = ? AND requested_by = ?", f.locs[i].Location.ID, "keypad change").Find(&runs)
				if len(runs) != want {
					t.Fatalf("location %d has %d keypad runs, want %d", i, len(runs), want)
				}
				for _, r := range runs {
					if run := nodeA.WaitRun(t, f.token, r.ID); run.State != "succeeded" || run.Trigger != "checkin" {
						t.Fatalf("location %d keypad run %+v, error %+v", i, run, run.Error)
					}
				}
				v, _ := nodeA.Store.LocationByID(t.Context(), f.locs[i].Location.ID)
				if (v.Location.UsersChangeDueAt == nil) != (want == 1) {
					t.Fatalf("location %d due %v after the passes", i, v.Location.UsersChangeDueAt)
				}
			}
			if started, err := nodeB.App.Engine().RunDueUsersChanges(t.Context()); err != nil || started != 0 {
				t.Fatalf("a later pass started %d (%v)", started, err)
			}
		})
	}
}

func TestKeypadChange_DatabaseAwayWhenDue_SyncStartsSoonAfterItReturns(t *testing.T) {
	// The schedule tick outlasts the test: only a prompt second look can
	// start the sync.
	outage := &dbtest.Outage{}
	tweak := func(c *app.Config) {
		c.UserChangeDelay = time.Second
		c.ScheduleTick = 10 * time.Minute
		c.OnDatabaseOpen = outage.Register
	}
	forEachBackend(t, tweak, sim.Options{Users: 10}, func(t *testing.T, tb *testBundle) {
		u := tb.panel.Users()[1]
		u.Name = "Renamed While The Database Blinks"
		if err := tb.panel.PutUser(u); err != nil {
			t.Fatal(err)
		}
		due := waitDue(t, tb)
		// The database is away from before the change falls due until
		// after, so the schedule loop's look at the due time fails.
		outage.Begin()
		time.Sleep(time.Until(due.Add(500 * time.Millisecond)))
		outage.End()
		run := waitKeypadRun(t, tb, 1)
		if run.State != "succeeded" || run.Changes.Updated != 1 {
			t.Fatalf("keypad sync %+v, want it to read the renamed user", run)
		}
	})
}
