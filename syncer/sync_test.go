package syncer_test

import (
	"fmt"
	"net/http"
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

// testBundle is a node on one backend with an account, a location and its
// simulated panel.
type testBundle struct {
	node  *apptest.Node
	token string
	acct  models.Account
	loc   models.LocationView
	cred  sim.Credentials
	panel *sim.Panel
	stop  func()
}

// forEachBackend runs fn on a node per backend, with the panel linked and
// the full users sync its first link started settled.
func forEachBackend(t *testing.T, tweak func(*app.Config), opts sim.Options, fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	forEachBackendWithSettings(t, tweak, models.LocationSettings{}, opts, fn)
}

// forEachBackendWithSettings is forEachBackend with the location's
// settings changed before its panel first links.
func forEachBackendWithSettings(t *testing.T, tweak func(*app.Config), settings models.LocationSettings, opts sim.Options, fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			if tweak != nil {
				tweak(&cfg)
			}
			node := apptest.Start(t, cfg)
			acct, token := node.Account(t, "Acme Alarms")
			loc, cred := node.Location(t, acct.ID, "Main Street")
			if settings != (models.LocationSettings{}) {
				var err error
				if loc, err = node.Store.UpdateLocation(t.Context(), models.SystemActor(acct.ID, "test"), loc.Location.ID, settings); err != nil {
					t.Fatal(err)
				}
			}
			p, stop := node.Panel(t, cred, opts)
			fn(t, &testBundle{node: node, token: token, acct: acct, loc: loc, cred: cred, panel: p, stop: stop})
		})
	}
}

// runsAt lists the location's runs, newest first.
func runsAt(t *testing.T, tb *testBundle) []apptest.Run {
	t.Helper()
	r := tb.node.Do(t, "GET", "/v1/runs?location_id="+tb.loc.Location.ID, tb.token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("runs: %d %s", r.Status, r.Body)
	}
	var page struct {
		Items []apptest.Run `json:"items"`
	}
	r.JSON(t, &page)
	return page.Items
}

// runIDs lists the ids of runs.
func runIDs(runs []apptest.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

// eventOfRun returns the run's event of type typ.
func eventOfRun(t *testing.T, events []apptest.Event, runID, typ string) apptest.Event {
	t.Helper()
	for _, e := range events {
		if e.RunID != nil && *e.RunID == runID && e.Type == typ {
			return e
		}
	}
	t.Fatalf("run %s has no %s event", runID, typ)
	return apptest.Event{}
}

func TestSyncUsers_FullThenIncremental_ReconcilesAndReportsChanges(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 12}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID

		// The panel's first link synced its users in full by itself.
		run := n.FirstSync(t, token, locID)
		if run.State != "succeeded" || run.Mode != "full" || run.Trigger != "checkin" || run.RequestedBy != "first connection" || run.Changes.Added != 12 || run.Changes.Removed != 0 {
			t.Fatalf("first sync %+v", run)
		}
		firstID := run.ID
		events := n.Events(t, token, locID)
		if got := apptest.EventsOfRun(events, run.ID); fmt.Sprint(got) != "[sync.requested sync.succeeded]" {
			t.Fatalf("events of the run: %v", got)
		}
		if msg := eventOfRun(t, events, run.ID, "sync.succeeded").Message; msg != "User sync succeeded: recorded the panel's 12 users" {
			t.Fatalf("success message %q", msg)
		}

		users := n.Do(t, "GET", "/v1/locations/"+locID+"/users", token, nil)
		var list struct {
			Items []struct {
				Number  int    `json:"number"`
				Name    string `json:"name"`
				HasCode bool   `json:"has_code"`
			} `json:"items"`
		}
		users.JSON(t, &list)
		if len(list.Items) != 12 {
			t.Fatalf("remote copy has %d users", len(list.Items))
		}
		assertNoCodes(t, tb, users.Body)

		// Keypad changes: one renamed, one deleted, one added.
		simUsers := tb.panel.Users()
		renamed := simUsers[2]
		renamed.Name = "Renamed At Keypad"
		if err := tb.panel.PutUser(renamed); err != nil {
			t.Fatal(err)
		}
		if err := tb.panel.RemoveUser(simUsers[4].Number); err != nil {
			t.Fatal(err)
		}
		added := panel.User{Number: 77, Name: "New Cleaner", Authority: panel.AuthorityGuest, Partitions: []int{1}, HasCode: true, Code: "4321"}
		if err := tb.panel.PutUser(added); err != nil {
			t.Fatal(err)
		}

		second := n.Sync(t, token, locID, "users")
		if second.Message != "User sync process has been initiated" || second.Run.Mode != "incremental" || second.Run.Trigger != "app" {
			t.Fatalf("second sync answer %+v, want an incremental run after a watermark, triggered in the app", second)
		}
		run = n.WaitRun(t, token, second.Run.ID)
		if run.State != "succeeded" || run.Changes.Added != 1 || run.Changes.Updated != 1 || run.Changes.Removed != 1 {
			t.Fatalf("incremental sync %+v", run)
		}
		changes := n.Do(t, "GET", "/v1/runs/"+run.ID+"/changes", token, nil)
		for _, want := range []string{`"action":"added","number":77`, `"action":"removed","number":` + fmt.Sprint(simUsers[4].Number), `"to":"Renamed At Keypad"`} {
			if !strings.Contains(string(changes.Body), want) {
				t.Errorf("changes lack %s: %s", want, changes.Body)
			}
		}
		events = n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Message != "User sync succeeded: 1 added, 1 updated, 1 removed" {
			t.Fatalf("success message %q", last.Message)
		}

		data := n.Do(t, "GET", "/v1/runs/"+firstID+"/data", token, nil)
		if data.Status != http.StatusOK || !strings.Contains(string(data.Body), `"users":[`) {
			t.Fatalf("run data: %d %s", data.Status, data.Body)
		}
		assertNoCodes(t, tb, data.Body)
		csv := n.Do(t, "GET", "/v1/runs/"+firstID+"/data?format=csv", token, nil)
		if lines := strings.Count(string(csv.Body), "\n"); csv.Status != http.StatusOK || lines != 13 || !strings.HasPrefix(string(csv.Body), "number,name,email,authority") {
			t.Fatalf("csv: %d, %d lines: %s", csv.Status, lines, csv.Body)
		}

		loc := n.Do(t, "GET", "/v1/locations/"+locID, token, nil)
		if !strings.Contains(string(loc.Body), `"status":"ok"`) || strings.Contains(string(loc.Body), `"users_synced_at":null`) {
			t.Fatalf("location after sync: %s", loc.Body)
		}
	})
}

// assertNoCodes checks that no user code the panel holds appears in body.
func assertNoCodes(t *testing.T, tb *testBundle, body []byte) {
	t.Helper()
	if strings.Contains(string(body), `"code"`) {
		t.Fatalf("a code field leaked: %s", body)
	}
}

func TestSyncUsers_CodeChange_IsDetectedWithoutStoringTheCode(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		u := tb.panel.Users()[0]
		u.Code = "982431"
		if err := tb.panel.PutUser(u); err != nil {
			t.Fatal(err)
		}
		run := n.WaitRun(t, token, n.Sync(t, token, locID, "users").Run.ID)
		if run.Changes.Updated != 1 {
			t.Fatalf("code change not seen: %+v", run)
		}
		changes := n.Do(t, "GET", "/v1/runs/"+run.ID+"/changes", token, nil)
		if !strings.Contains(string(changes.Body), `{"field":"code"}`) || strings.Contains(string(changes.Body), "982431") {
			t.Fatalf("changes: %s", changes.Body)
		}
		var rows []models.PanelUser
		if err := n.Store.DB().Where("location_id = ?", locID).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if strings.Contains(r.CodeDigest, "982431") || (r.HasCode && len(r.CodeDigest) != 64) {
				t.Fatalf("stored code digest %q for user %d", r.CodeDigest, r.UserNumber)
			}
		}
	})
}

func TestSyncPanel_ReadsConfiguration_RefusedWhileArmed(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		res := n.Sync(t, token, locID, "panel")
		if res.Message != "Panel sync process has been initiated" {
			t.Fatalf("message %q", res.Message)
		}
		run := n.WaitRun(t, token, res.Run.ID)
		cfg := tb.panel.Config()
		want := len(cfg.Partitions) + len(cfg.Zones) + len(cfg.Devices)
		if run.State != "succeeded" || run.Changes.Added != want {
			t.Fatalf("panel sync %+v, want %d added", run, want)
		}
		// The message says what was read, by kind, not "39 added".
		counted := func(n int, one, many string) string {
			if n == 1 {
				return "1 " + one
			}
			return fmt.Sprintf("%d %s", n, many)
		}
		parts, zones, devices := counted(len(cfg.Partitions), "partition", "partitions"), counted(len(cfg.Zones), "zone", "zones"), counted(len(cfg.Devices), "device", "devices")
		wantFirst := fmt.Sprintf("Panel sync succeeded: recorded the panel's %s, %s and %s", parts, zones, devices)
		if msg := eventOfRun(t, n.Events(t, token, locID), run.ID, "sync.succeeded").Message; msg != wantFirst {
			t.Fatalf("first panel sync says %q, want %q", msg, wantFirst)
		}
		again := n.WaitRun(t, token, n.Sync(t, token, locID, "panel").Run.ID)
		wantAgain := fmt.Sprintf("Panel sync succeeded: no changes (%s, %s, %s)", parts, zones, devices)
		if msg := eventOfRun(t, n.Events(t, token, locID), again.ID, "sync.succeeded").Message; msg != wantAgain {
			t.Fatalf("second panel sync says %q, want %q", msg, wantAgain)
		}
		got := n.Do(t, "GET", "/v1/locations/"+locID+"/panel", token, nil)
		var pc panel.Config
		got.JSON(t, &pc)
		if len(pc.Zones) != len(cfg.Zones) || pc.Zones[0].Name != cfg.Zones[0].Name {
			t.Fatalf("remote configuration %+v", pc)
		}

		if err := tb.panel.SetArmed(0, panel.ArmAway); err != nil {
			t.Fatal(err)
		}
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			v, _ := n.Store.LocationByID(t.Context(), locID)
			return v.Panel.ArmedState == panel.ArmAway, v.Panel.ArmedState
		})
		r := n.Do(t, "POST", "/v1/locations/"+locID+"/sync", token, map[string]string{"kind": "panel"})
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"code":"panel_armed"`) ||
			!strings.Contains(string(r.Body), "the panel is armed away; disarm it before a panel sync") {
			t.Fatalf("panel sync while armed: %d %s", r.Status, r.Body)
		}
		// Users and refresh still run on an armed panel.
		if run := n.WaitRun(t, token, n.Sync(t, token, locID, "refresh").Run.ID); run.State != "succeeded" {
			t.Fatalf("refresh while armed: %+v", run)
		}
	})
}

func TestSyncPanel_ArmedWhileQueued_FailsWhenRun(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Latency: 300 * time.Millisecond}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		res := n.Sync(t, token, locID, "panel")
		// The panel arms while the run's status check is in flight; the
		// check answers after the delay, armed.
		if err := tb.panel.SetArmed(1, panel.ArmStay); err != nil {
			t.Fatal(err)
		}
		run := n.WaitRun(t, token, res.Run.ID)
		if run.State != "failed" || run.Error == nil || run.Error.Code != "panel_armed" {
			t.Fatalf("run %+v", run)
		}
	})
}

func TestRefresh_StoresStatus(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		res := n.Sync(t, token, locID, "refresh")
		if res.Message != "Refresh process has been initiated" {
			t.Fatalf("message %q", res.Message)
		}
		if run := n.WaitRun(t, token, res.Run.ID); run.State != "succeeded" {
			t.Fatalf("refresh %+v", run)
		}
		st := n.Do(t, "GET", "/v1/locations/"+locID+"/status", token, nil)
		var body struct {
			Connection  string        `json:"connection"`
			ArmedState  string        `json:"armed_state"`
			Status      *panel.Status `json:"status"`
			RefreshedAt *time.Time    `json:"refreshed_at"`
		}
		st.JSON(t, &body)
		if body.Connection != "connected" || body.ArmedState != panel.ArmDisarmed || body.Status == nil || body.RefreshedAt == nil || len(body.Status.Partitions) != len(tb.panel.Status().Partitions) {
			t.Fatalf("status %s", st.Body)
		}
		events := n.Events(t, token, locID)
		if last := events[len(events)-1]; !strings.HasPrefix(last.Message, "Refresh succeeded: disarmed") {
			t.Fatalf("refresh message %q", last.Message)
		}
	})
}

func TestSync_PanelTimeout_RetriesThenReportsSyncFailure(t *testing.T) {
	tweak := func(c *app.Config) {
		c.CommandTimeout = 200 * time.Millisecond
		c.MaxAttempts = 3
	}
	forEachBackend(t, tweak, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		tb.panel.SetUnresponsive(true)
		run := n.WaitRun(t, token, n.Sync(t, token, locID, "users").Run.ID)
		if run.State != "failed" || run.Attempt != 3 || run.Error == nil || run.Error.Code != "panel_timeout" {
			t.Fatalf("run %+v", run)
		}
		events := n.Events(t, token, locID)
		last := events[len(events)-1]
		if last.Type != "sync.failed" || last.Severity != "error" || last.Message != "User sync failed: the panel did not answer in time" || !strings.Contains(string(last.Data), `"code":"panel_timeout"`) {
			t.Fatalf("failure event %+v", last)
		}
		// Each retry is in the Event Log as it is scheduled, so the wait
		// between the request and the Sync Failure is never silent; one
		// entry per retry, no more.
		if got := apptest.EventsOfRun(events, run.ID); fmt.Sprint(got) != "[sync.requested sync.retrying sync.retrying sync.failed]" {
			t.Fatalf("events of the run: %v", got)
		}
		next := 2
		for _, e := range events {
			if e.Type != "sync.retrying" {
				continue
			}
			prefix := "User sync: the panel did not answer in time; trying again in "
			suffix := fmt.Sprintf(" (attempt %d of 3)", next)
			if e.Severity != "warning" || !strings.HasPrefix(e.Message, prefix) || !strings.HasSuffix(e.Message, suffix) ||
				!strings.Contains(string(e.Data), fmt.Sprintf(`"next_attempt":%d`, next)) || !strings.Contains(string(e.Data), `"code":"panel_timeout"`) {
				t.Fatalf("retry event %+v, want a warning %q…%q", e, prefix, suffix)
			}
			next++
		}
		loc := n.Do(t, "GET", "/v1/locations/"+locID, token, nil)
		if !strings.Contains(string(loc.Body), `"status":"sync_failure"`) {
			t.Fatalf("location after failure: %s", loc.Body)
		}

		// A later success clears the Sync Failure.
		tb.panel.SetUnresponsive(false)
		if run := n.WaitRun(t, token, n.Sync(t, token, locID, "refresh").Run.ID); run.State != "succeeded" {
			t.Fatalf("recovery %+v", run)
		}
		loc = n.Do(t, "GET", "/v1/locations/"+locID, token, nil)
		if !strings.Contains(string(loc.Body), `"status":"ok"`) {
			t.Fatalf("location after recovery: %s", loc.Body)
		}
	})
}

func TestSync_PanelError_FailsAtOnce(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		tb.panel.SetErrorRate(1)
		run := tb.node.WaitRun(t, tb.token, tb.node.Sync(t, tb.token, tb.loc.Location.ID, "users").Run.ID)
		if run.State != "failed" || run.Attempt != 1 || run.Error == nil || run.Error.Code != "panel_error" {
			t.Fatalf("a refusal is not retried: %+v", run)
		}
		// The message tells the panel's words from the service's own.
		if want := `the panel could not carry out the command; it said "panel reported an internal error" (its code panel_error)`; run.Error.Message != want {
			t.Fatalf("the failure reads %q, want %q", run.Error.Message, want)
		}
	})
}

func TestSync_PanelOffline_TapAnswers409AndLogsTheSameSyncFailureAsABatch(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		tb.stop()
		n.WaitPanel(t, locID, models.PanelDisconnected)
		r := n.Do(t, "POST", "/v1/locations/"+locID+"/sync", token, map[string]string{"kind": "users"})
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"code":"panel_disconnected"`) {
			t.Fatalf("sync with the panel offline: %d %s", r.Status, r.Body)
		}
		// The tap could not reach the panel, and the Event Log says so: a
		// run that failed at once, its Sync Failure, and who asked.
		runs := runsAt(t, tb)
		if len(runs) != 2 || runs[1].ID != first.ID {
			t.Fatalf("runs after a refused tap %v, want the refusal and the first sync", runIDs(runs))
		}
		tapped := runs[0]
		if tapped.State != "failed" || tapped.Trigger != "app" || tapped.Attempt != 0 || tapped.Error == nil || tapped.Error.Code != "panel_disconnected" {
			t.Fatalf("the refused tap's run %+v", tapped)
		}
		tapEvent := eventOfRun(t, n.Events(t, token, locID), tapped.ID, "sync.failed")
		const reason = ": the panel is not connected, so the request could not reach it; try again once the panel is back online"
		want := "User sync requested by " + tapped.RequestedBy + " could not start" + reason
		if tapEvent.Severity != "error" || tapEvent.Message != want || !strings.Contains(string(tapEvent.Data), `"code":"panel_disconnected"`) {
			t.Fatalf("the refused tap's event %+v, want %q", tapEvent, want)
		}
		if status := locationStatus(t, tb); status != "sync_failure" {
			t.Fatalf("location after a refused tap: %s, want sync_failure", status)
		}

		// The same location in a batch is recorded the same way.
		f := &fleet{node: n, acct: tb.acct, token: token}
		batch := f.waitBatch(t, f.startBatch(t, map[string]any{"kind": "users", "scope": "locations", "location_ids": []string{locID}}).ID)
		if batch.Failed != 1 {
			t.Fatalf("batch %+v, want the location failed", batch)
		}
		runs = runsAt(t, tb)
		batchEvent := eventOfRun(t, n.Events(t, token, locID), runs[0].ID, "sync.failed")
		if batchEvent.Message != tapEvent.Message || batchEvent.Severity != tapEvent.Severity || runs[0].Error == nil || runs[0].Error.Code != "panel_disconnected" {
			t.Fatalf("the batch's Sync Failure %+v differs from the tap's %+v", batchEvent, tapEvent)
		}
	})
}

func TestSync_ConcurrentTaps_StartOneRun(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Latency: 400 * time.Millisecond}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		type answer struct {
			status int
			res    apptest.SyncResult
		}
		answers := make([]answer, 10)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := n.Do(t, "POST", "/v1/locations/"+locID+"/sync", token, map[string]string{"kind": "users"})
				answers[i].status = r.Status
				r.JSON(t, &answers[i].res)
			}()
		}
		wg.Wait()
		accepted, deduped := 0, 0
		ids := map[string]bool{}
		for _, a := range answers {
			ids[a.res.Run.ID] = true
			switch {
			case a.status == http.StatusAccepted && !a.res.Deduplicated:
				accepted++
			case a.status == http.StatusOK && a.res.Deduplicated:
				deduped++
			default:
				t.Fatalf("unexpected answer %d %+v", a.status, a.res)
			}
		}
		if accepted != 1 || deduped != 9 || len(ids) != 1 {
			t.Fatalf("%d accepted, %d deduplicated, %d distinct runs", accepted, deduped, len(ids))
		}
		var runID string
		for id := range ids {
			runID = id
		}
		n.WaitRun(t, token, runID)
		if got := apptest.EventsOfRun(n.Events(t, token, locID), runID); fmt.Sprint(got) != "[sync.requested sync.succeeded]" {
			t.Fatalf("events %v", got)
		}
	})
}

func TestSync_OtherAccount_Answers404AndStartsNothing(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n := tb.node
		_, otherToken := n.Account(t, "Other Co")
		locID := tb.loc.Location.ID
		for _, req := range []struct{ method, path string }{
			{"POST", "/v1/locations/" + locID + "/sync"},
			{"GET", "/v1/locations/" + locID + "/users"},
			{"GET", "/v1/runs?location_id=" + locID},
		} {
			r := n.Do(t, req.method, req.path, otherToken, map[string]string{"kind": "users"})
			if req.method == "GET" {
				r = n.Do(t, req.method, req.path, otherToken, nil)
			}
			if r.Status != http.StatusNotFound {
				t.Errorf("%s %s as another account: %d %s", req.method, req.path, r.Status, r.Body)
			}
		}
		run := n.WaitRun(t, tb.token, n.Sync(t, tb.token, locID, "refresh").Run.ID)
		for _, path := range []string{"/v1/runs/" + run.ID, "/v1/runs/" + run.ID + "/data", "/v1/runs/" + run.ID + "/changes"} {
			if r := n.Do(t, "GET", path, otherToken, nil); r.Status != http.StatusNotFound {
				t.Errorf("GET %s as another account: %d", path, r.Status)
			}
		}
		if r := n.Do(t, "GET", "/v1/events", otherToken, nil); strings.Contains(string(r.Body), locID) {
			t.Fatalf("another account sees this account's events: %s", r.Body)
		}
	})
}

func TestSync_BadRequests_AreRefused(t *testing.T) {
	forEachBackend(t, nil, sim.Options{}, func(t *testing.T, tb *testBundle) {
		n, locID := tb.node, tb.loc.Location.ID
		first := n.FirstSync(t, tb.token, locID)
		support := n.Login(t, tb.acct.ID, models.RoleSupport)
		cases := []struct {
			token  string
			body   any
			status int
			code   string
		}{
			{tb.token, map[string]string{"kind": "everything"}, 400, "invalid_request"},
			{tb.token, map[string]string{}, 400, "invalid_request"},
			{tb.token, map[string]any{"kind": "users", "extra": 1}, 400, "invalid_request"},
			{support, map[string]string{"kind": "users"}, 403, "forbidden"},
		}
		for _, tc := range cases {
			r := n.Do(t, "POST", "/v1/locations/"+locID+"/sync", tc.token, tc.body)
			if r.Status != tc.status || !strings.Contains(string(r.Body), `"code":"`+tc.code+`"`) {
				t.Errorf("%v: %d %s", tc.body, r.Status, r.Body)
			}
		}
		for _, q := range []string{"?state=sideways", "?kind=x", "?limit=0", "?cursor=garbage"} {
			if r := n.Do(t, "GET", "/v1/runs"+q, tb.token, nil); r.Status != 400 {
				t.Errorf("runs%s: %d", q, r.Status)
			}
		}
		for _, q := range []string{"?after=-1", "?after=x", "?after=1&before=5"} {
			if r := n.Do(t, "GET", "/v1/events"+q, tb.token, nil); r.Status != 400 {
				t.Errorf("events%s: %d", q, r.Status)
			}
		}
		if runs := runIDs(runsAt(t, tb)); fmt.Sprint(runs) != fmt.Sprint([]string{first.ID}) {
			t.Fatalf("refused requests left runs: %v, want only the first sync %s", runs, first.ID)
		}
	})
}

func TestCancelRun_QueuedRunNeverRuns(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Latency: 500 * time.Millisecond}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		// A user added at the keypad is what the cancelled run would have
		// applied.
		added := panel.User{Number: 77, Name: "Never Synced", Authority: panel.AuthorityGuest, Partitions: []int{1}}
		if err := tb.panel.PutUser(added); err != nil {
			t.Fatal(err)
		}
		res := n.Sync(t, token, locID, "users")
		r := n.Do(t, "POST", "/v1/runs/"+res.Run.ID+"/cancel", token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		run := n.WaitRun(t, token, res.Run.ID)
		if run.State != "cancelled" {
			t.Fatalf("run %+v", run)
		}
		time.Sleep(700 * time.Millisecond)
		users, err := n.Store.PanelUsers(t.Context(), locID)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u.UserNumber == added.Number {
				t.Fatalf("a cancelled run applied user %d", u.UserNumber)
			}
		}
		if len(users) != first.Changes.Added {
			t.Fatalf("the remote copy has %d users after a cancelled run, want the first sync's %d", len(users), first.Changes.Added)
		}
		if r := n.Do(t, "POST", "/v1/runs/"+res.Run.ID+"/cancel", token, nil); r.Status != http.StatusConflict {
			t.Fatalf("cancel twice: %d", r.Status)
		}
		// The audit log names the cancelled run by where it ran.
		if e := auditLog(t, n, token)[0]; e.Action != "run.cancel" || e.Target.ID != res.Run.ID || e.Target.Name != "Main Street" {
			t.Fatalf("newest audit entry %+v, want run.cancel of run %s at Main Street", e, res.Run.ID)
		}
		if got := apptest.EventsOfRun(n.Events(t, token, locID), res.Run.ID); fmt.Sprint(got) != "[sync.requested sync.cancelled]" {
			t.Fatalf("events %v", got)
		}
	})
}
