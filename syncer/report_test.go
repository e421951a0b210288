package syncer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// reports returns the sync reports in the node's outbox, oldest first, as
// the files read.
func reports(t *testing.T, tb *testBundle) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(tb.node.App.Outbox(), "*-sync_report-*.eml"))
	slices.Sort(files)
	out := make([]string, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// waitReports waits for n sync reports and returns them.
func waitReports(t *testing.T, tb *testBundle, n int) []string {
	t.Helper()
	var got []string
	apptest.Eventually(t, 15*time.Second, func() (bool, string) {
		got = reports(t, tb)
		return len(got) >= n, fmt.Sprintf("%d of %d sync reports in the outbox: %q", len(got), n, got)
	})
	return got
}

func TestReports_HeldFailedAndFinishedUserRuns_AreMailedToTheLocationsAddresses(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 6}, func(t *testing.T, tb *testBundle) {
		// No addresses: no mail.
		if r := syncUsers(t, tb); r.State != "succeeded" {
			t.Fatalf("first sync %+v", r)
		}
		settle(t, tb, map[string]any{"report_emails": []string{"ops@example.com", "security@example.com"}, "auto_apply": false})
		if err := tb.panel.RemoveUser(tb.panel.Users()[0].Number); err != nil {
			t.Fatal(err)
		}
		held := syncUsers(t, tb)
		got := waitReports(t, tb, 2)
		for _, to := range []string{"ops@example.com", "security@example.com"} {
			i := slices.IndexFunc(got, func(m string) bool { return strings.Contains(m, "To: <"+to+">") })
			if i < 0 {
				t.Fatalf("no report to %s in %d mails", to, len(got))
			}
			m := got[i]
			if !strings.Contains(m, "Subject: Main Street: user sync held for apply") || !strings.Contains(m, held.ID) || !strings.Contains(m, "1 removed") {
				t.Fatalf("held report to %s:\n%s", to, m)
			}
		}
		if r := tb.node.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", tb.token, nil); r.Status != 200 {
			t.Fatalf("apply: %d %s", r.Status, r.Body)
		}
		got = waitReports(t, tb, 4)
		if !strings.Contains(got[len(got)-1], "user sync applied by ") {
			t.Fatalf("last report:\n%s", got[len(got)-1])
		}
		settle(t, tb, map[string]any{"report_emails": []string{"ops@example.com"}, "auto_apply": true})
		tb.panel.SetErrorRate(1)
		failed := syncUsers(t, tb)
		if failed.State != "failed" {
			t.Fatalf("sync of a panel that errs %+v", failed)
		}
		got = waitReports(t, tb, 5)
		if last := got[len(got)-1]; !strings.Contains(last, "Subject: Main Street: user sync failed") || !strings.Contains(last, failed.ID) {
			t.Fatalf("failure report:\n%s", last)
		}
		// Refreshes are not user syncs: no report.
		tb.panel.SetErrorRate(0)
		if r := tb.node.WaitRun(t, tb.token, tb.node.Sync(t, tb.token, tb.loc.Location.ID, "refresh").Run.ID); r.State != "succeeded" {
			t.Fatalf("refresh %+v", r)
		}
		if r := syncUsers(t, tb); r.State != "succeeded" {
			t.Fatalf("last sync %+v", r)
		}
		got = waitReports(t, tb, 6)
		if len(got) != 6 || !strings.Contains(got[5], "user sync succeeded") {
			t.Fatalf("%d reports; last:\n%s", len(got), got[len(got)-1])
		}
	})
}

func TestReports_ABatch_SendsOneSummaryNotOneMailPerLocation(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		n := tb.node
		second, cred := n.Location(t, tb.acct.ID, "Depot")
		_, stop := n.Panel(t, cred, sim.Options{Users: 3})
		defer stop()
		for _, id := range []string{tb.loc.Location.ID, second.Location.ID} {
			r := n.Do(t, "PATCH", "/v1/locations/"+id, tb.token, map[string]any{"settings": map[string]any{"report_emails": []string{"ops@example.com"}}})
			if r.Status != 200 {
				t.Fatalf("settings: %d %s", r.Status, r.Body)
			}
		}
		n.WaitPanel(t, second.Location.ID, "connected")
		r := n.Do(t, "POST", "/v1/sync", tb.token, map[string]any{"kind": "users", "scope": "all"})
		if r.Status != 202 {
			t.Fatalf("batch: %d %s", r.Status, r.Body)
		}
		got := waitReports(t, tb, 1)
		if !strings.Contains(got[0], "Subject: All locations: 2 succeeded") {
			t.Fatalf("batch summary:\n%s", got[0])
		}
		// Every run's outcome committed before the batch finished, so any
		// report queued for a run on its own is in the queue by now.
		var queued int64
		if err := n.Store.DB().Model(&models.Mail{}).Where("kind = ?", "sync_report").Count(&queued).Error; err != nil {
			t.Fatal(err)
		}
		if queued != 1 {
			t.Fatalf("%d reports queued for a batch of two, want one summary", queued)
		}
	})
}
