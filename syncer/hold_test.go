package syncer_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// remoteUsers counts the users in the location's remote copy.
func remoteUsers(t *testing.T, tb *testBundle) int {
	t.Helper()
	var list struct {
		Items []struct {
			Number int `json:"number"`
		} `json:"items"`
	}
	tb.node.Do(t, "GET", "/v1/locations/"+tb.loc.Location.ID+"/users", tb.token, nil).JSON(t, &list)
	return len(list.Items)
}

func locationStatus(t *testing.T, tb *testBundle) string {
	t.Helper()
	var loc struct {
		Sync struct {
			Status string `json:"status"`
		} `json:"sync"`
	}
	tb.node.Do(t, "GET", "/v1/locations/"+tb.loc.Location.ID, tb.token, nil).JSON(t, &loc)
	return loc.Sync.Status
}

func settle(t *testing.T, tb *testBundle, settings map[string]any) {
	t.Helper()
	r := tb.node.Do(t, "PATCH", "/v1/locations/"+tb.loc.Location.ID, tb.token, map[string]any{"settings": settings})
	if r.Status != http.StatusOK {
		t.Fatalf("settings %v: %d %s", settings, r.Status, r.Body)
	}
}

// syncUsers taps SYNC USERS and waits for the run to stop moving.
func syncUsers(t *testing.T, tb *testBundle) apptest.Run {
	t.Helper()
	return tb.node.WaitRun(t, tb.token, tb.node.Sync(t, tb.token, tb.loc.Location.ID, "users").Run.ID)
}

func TestSyncUsers_ResetPanelReportingNoUsers_IsHeldUntilApplied(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 10}, func(t *testing.T, tb *testBundle) {
		n, token := tb.node, tb.token
		if first := n.FirstSync(t, token, tb.loc.Location.ID); first.State != "succeeded" || first.Changes.Added != 10 {
			t.Fatalf("first sync %+v", first)
		}
		// The panel is reset to factory defaults: it reports no users.
		for _, u := range tb.panel.Users() {
			if err := tb.panel.RemoveUser(u.Number); err != nil {
				t.Fatal(err)
			}
		}
		held := syncUsers(t, tb)
		if held.State != "awaiting_apply" || held.Changes.Removed != 10 {
			t.Fatalf("sync of a reset panel %+v, want awaiting_apply with 10 removed", held)
		}
		if got := remoteUsers(t, tb); got != 10 {
			t.Fatalf("a held run changed the record: %d users left", got)
		}
		if s := locationStatus(t, tb); s != "held" {
			t.Fatalf("location status %q, want held", s)
		}
		events := n.Events(t, token, tb.loc.Location.ID)
		last := events[len(events)-1]
		if last.Type != "sync.held" || last.Severity != "warning" || !strings.Contains(last.Message, "10 removed") || !strings.Contains(last.Message, "safety threshold of 20%") {
			t.Fatalf("last event %+v, want sync.held naming the counts and the threshold", last)
		}

		// While it is held, no other users sync starts there.
		again := n.Do(t, "POST", "/v1/locations/"+tb.loc.Location.ID+"/sync", token, map[string]string{"kind": "users"})
		if again.Status != http.StatusConflict || !strings.Contains(string(again.Body), held.ID) || !strings.Contains(string(again.Body), "apply or cancel it first") {
			t.Fatalf("sync while held: %d %s", again.Status, again.Body)
		}
		// Other kinds still run.
		if r := n.WaitRun(t, token, n.Sync(t, token, tb.loc.Location.ID, "refresh").Run.ID); r.State != "succeeded" {
			t.Fatalf("refresh while users are held: %+v", r)
		}
		if s := locationStatus(t, tb); s != "held" {
			t.Fatalf("location status after a refresh %q, want still held", s)
		}

		applied := n.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", token, nil)
		if applied.Status != http.StatusOK || !strings.Contains(string(applied.Body), `"state":"succeeded"`) {
			t.Fatalf("apply: %d %s", applied.Status, applied.Body)
		}
		if got := remoteUsers(t, tb); got != 0 {
			t.Fatalf("after apply the record holds %d users", got)
		}
		if s := locationStatus(t, tb); s != "ok" {
			t.Fatalf("location status after apply %q", s)
		}
		events = n.Events(t, token, tb.loc.Location.ID)
		if last := events[len(events)-1]; last.Type != "sync.succeeded" || !strings.HasPrefix(last.Message, "User sync applied by ") {
			t.Fatalf("last event after apply %+v", last)
		}
		if r := n.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", token, nil); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"code":"invalid_state"`) {
			t.Fatalf("second apply: %d %s", r.Status, r.Body)
		}
		var audit []models.AuditEntry
		n.Store.DB().Where("account_id = ? AND action = ?", tb.acct.ID, "run.apply").Find(&audit)
		if len(audit) != 1 || audit[0].TargetID != held.ID {
			t.Fatalf("apply audited as %+v", audit)
		}
		// A new sync may start again.
		if r := syncUsers(t, tb); r.State != "succeeded" {
			t.Fatalf("sync after apply %+v", r)
		}
	})
}

func TestSyncUsers_AutoApplyOff_HoldsChangesButNotANoChangeRun(t *testing.T) {
	off := false
	forEachBackendWithSettings(t, nil, models.LocationSettings{AutoApply: &off}, sim.Options{Users: 5}, func(t *testing.T, tb *testBundle) {
		// The sync the panel's first link started is held like any other.
		first := tb.node.FirstSync(t, tb.token, tb.loc.Location.ID)
		if first.State != "awaiting_apply" || first.Changes.Added != 5 || remoteUsers(t, tb) != 0 {
			t.Fatalf("first sync with auto apply off %+v", first)
		}
		// Cancelling drops the held changes and frees the location.
		r := tb.node.Do(t, "POST", "/v1/runs/"+first.ID+"/cancel", tb.token, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"state":"cancelled"`) || remoteUsers(t, tb) != 0 {
			t.Fatalf("cancel held: %d %s", r.Status, r.Body)
		}
		if s := locationStatus(t, tb); s != "never" {
			t.Fatalf("status after cancelling the only run %q, want never", s)
		}
		second := syncUsers(t, tb)
		if second.State != "awaiting_apply" {
			t.Fatalf("second sync %+v", second)
		}
		if r := tb.node.Do(t, "POST", "/v1/runs/"+second.ID+"/apply", tb.token, nil); r.Status != http.StatusOK {
			t.Fatalf("apply: %d %s", r.Status, r.Body)
		}
		// Nothing changed on the panel since: nothing to approve.
		if third := syncUsers(t, tb); third.State != "succeeded" {
			t.Fatalf("a run with no changes was held: %+v", third)
		}
	})
}

func TestSyncUsers_ThresholdEdges_AtTheLimitAppliesJustOverHolds(t *testing.T) {
	cases := []struct {
		name     string
		settings map[string]any
		// remove and add are how many users the panel loses and gains
		// after the first sync of 10.
		remove, add int
		want        string
	}{
		{"percent: exactly 20% removed", map[string]any{"safety_threshold_percent": 20}, 2, 0, "succeeded"},
		{"percent: 30% removed", map[string]any{"safety_threshold_percent": 20}, 3, 0, "awaiting_apply"},
		{"percent: 100% allows everything", map[string]any{"safety_threshold_percent": 100}, 10, 0, "succeeded"},
		{"count: exactly 3 changed", map[string]any{"safety_threshold_percent": 100, "safety_threshold_count": 3}, 1, 2, "succeeded"},
		{"count: 4 changed", map[string]any{"safety_threshold_percent": 100, "safety_threshold_count": 3}, 1, 3, "awaiting_apply"},
		{"additions alone never reach the percent", map[string]any{"safety_threshold_percent": 1}, 0, 9, "succeeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, nil, sim.Options{Users: 10}, func(t *testing.T, tb *testBundle) {
				if first := tb.node.FirstSync(t, tb.token, tb.loc.Location.ID); first.State != "succeeded" {
					t.Fatalf("first sync %+v", first)
				}
				settle(t, tb, tc.settings)
				users := tb.panel.Users()
				for _, u := range users[:tc.remove] {
					if err := tb.panel.RemoveUser(u.Number); err != nil {
						t.Fatal(err)
					}
				}
				for i := range tc.add {
					u := panel.User{Number: 500 + i, Name: fmt.Sprintf("Added %d", i), Authority: panel.AuthorityStandard, Partitions: []int{1}}
					if err := tb.panel.PutUser(u); err != nil {
						t.Fatal(err)
					}
				}
				if got := syncUsers(t, tb); got.State != tc.want {
					t.Fatalf("run %+v, want %s", got, tc.want)
				}
			})
		})
	}
}

func TestRunActions_StateTable(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 4}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		succeeded := n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"auto_apply": false})
		if err := tb.panel.RemoveUser(tb.panel.Users()[0].Number); err != nil {
			t.Fatal(err)
		}
		held := syncUsers(t, tb)
		if held.State != "awaiting_apply" {
			t.Fatalf("held run %+v", held)
		}
		// A queued run: the panel stops answering, so the refresh waits.
		tb.panel.SetUnresponsive(true)
		queued := n.Sync(t, token, locID, "refresh").Run

		cases := []struct {
			action, runID string
			body          any
			status        int
			code          string
		}{
			{"apply", succeeded.ID, nil, 409, "invalid_state"},
			{"apply", queued.ID, nil, 409, "invalid_state"},
			{"cancel", succeeded.ID, nil, 409, "invalid_state"},
			{"mark-cancelled", succeeded.ID, map[string]bool{"confirm": true}, 409, "invalid_state"},
			{"mark-cancelled", held.ID, map[string]bool{"confirm": false}, 400, "invalid_request"},
			{"mark-cancelled", held.ID, map[string]any{}, 400, "invalid_request"},
			{"mark-cancelled", held.ID, map[string]bool{"confirm": true}, 200, ""},
			{"mark-cancelled", held.ID, map[string]bool{"confirm": true}, 409, "invalid_state"},
			{"apply", held.ID, nil, 409, "invalid_state"},
			{"mark-cancelled", queued.ID, map[string]bool{"confirm": true}, 200, ""},
			{"cancel", queued.ID, nil, 409, "invalid_state"},
		}
		for _, tc := range cases {
			r := n.Do(t, "POST", "/v1/runs/"+tc.runID+"/"+tc.action, token, tc.body)
			if r.Status != tc.status || (tc.code != "" && !strings.Contains(string(r.Body), `"code":"`+tc.code+`"`)) {
				t.Errorf("%s of %s: %d %s, want %d %s", tc.action, tc.runID, r.Status, r.Body, tc.status, tc.code)
			}
		}
		if got := remoteUsers(t, tb); got != 4 {
			t.Fatalf("a cancelled held run changed the record: %d users", got)
		}
		events := n.Events(t, token, locID)
		var marked []string
		for _, e := range events {
			if e.Type == "sync.cancelled" {
				marked = append(marked, e.Message)
			}
		}
		if len(marked) != 2 || !strings.Contains(marked[0], "marked cancelled") || !strings.Contains(marked[0], "while awaiting apply") {
			t.Fatalf("sync.cancelled events %q", marked)
		}
		var audit []models.AuditEntry
		n.Store.DB().Where("account_id = ? AND action = ?", tb.acct.ID, "run.mark_cancelled").Find(&audit)
		if len(audit) != 2 {
			t.Fatalf("mark-cancelled audited %d times, want 2", len(audit))
		}
		// Members cannot apply or mark cancelled; they may cancel.
		member := n.Login(t, tb.acct.ID, models.RoleMember)
		for _, action := range []string{"apply", "mark-cancelled"} {
			if r := n.Do(t, "POST", "/v1/runs/"+held.ID+"/"+action, member, map[string]bool{"confirm": true}); r.Status != http.StatusForbidden {
				t.Errorf("member %s: %d", action, r.Status)
			}
		}
	})
}
