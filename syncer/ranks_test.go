package syncer_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestRanks_RankNoNodeServes_RunWaitsWarnsOnceAndShowsOnReadyzAndMetrics
// queues a run of a rank this node does not serve: the run stays queued,
// the account is warned once however often the check runs, /readyz and
// the metrics show the rank, and giving the location a served rank lets
// the run go and clears them.
func TestRanks_RankNoNodeServes_RunWaitsWarnsOnceAndShowsOnReadyzAndMetrics(t *testing.T) {
	tweak := func(c *app.Config) {
		c.Ranks = "1"
		c.MetricsAddr = "127.0.0.1:0"
	}
	forEachBackend(t, tweak, sim.Options{Users: 2}, func(t *testing.T, tb *testBundle) {
		n := tb.node
		engine := n.App.Engine()
		patch := func(rank int) {
			t.Helper()
			r := n.Do(t, "PATCH", "/v1/locations/"+tb.loc.Location.ID, tb.token, map[string]any{"rank": rank})
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"rank":`+strconv.Itoa(rank)) {
				t.Fatalf("set rank %d: %d %s", rank, r.Status, r.Body)
			}
		}
		patch(5)
		run := n.Sync(t, tb.token, tb.loc.Location.ID, "refresh").Run

		// The check runs on every heartbeat; the warning is written once
		// however many checks find the rank stranded.
		for range 3 {
			if err := engine.CheckRanks(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		var warnings []apptest.Event
		for _, e := range accountEvents(t, n, tb.token) {
			if e.Type == "runs.stranded" {
				warnings = append(warnings, e)
			}
		}
		if len(warnings) != 1 || warnings[0].Severity != "warning" || warnings[0].LocationID != nil ||
			warnings[0].Message != "1 run of rank 5 wait: no running node serves rank 5" {
			t.Fatalf("stranded warnings %+v, want one", warnings)
		}
		if r := n.Do(t, "GET", "/v1/runs/"+run.ID, tb.token, nil); !strings.Contains(string(r.Body), `"state":"queued"`) {
			t.Fatalf("the stranded run left the queue: %s", r.Body)
		}
		ready := n.Do(t, "GET", "/readyz", "", nil)
		if ready.Status != http.StatusOK || !strings.Contains(string(ready.Body), `"stranded_ranks":[{"rank":5,"queued":1}]`) {
			t.Fatalf("readyz: %d %s", ready.Status, ready.Body)
		}
		if body := scrape(t, n); !strings.Contains(body, `panelsync_runs_stranded{rank="5"} 1`) {
			t.Fatalf("metrics lack the stranded rank:\n%s", grepLines(body, "stranded"))
		}

		// Rank 1 is this node's: the run goes, and the next check clears
		// what showed it stranded.
		patch(1)
		engine.Wake()
		if got := n.WaitRun(t, tb.token, run.ID); got.State != "succeeded" {
			t.Fatalf("run after its location moved to a served rank: %+v", got)
		}
		if err := engine.CheckRanks(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ready := n.Do(t, "GET", "/readyz", "", nil); strings.Contains(string(ready.Body), "stranded_ranks") {
			t.Fatalf("readyz still shows a stranded rank: %s", ready.Body)
		}
		if body := scrape(t, n); strings.Contains(body, `panelsync_runs_stranded{`) {
			t.Fatalf("metrics still show a stranded rank:\n%s", grepLines(body, "stranded"))
		}
	})
}

// accountEvents returns the account's whole Event Log, oldest first.
func accountEvents(t *testing.T, n *apptest.Node, token string) []apptest.Event {
	t.Helper()
	r := n.Do(t, "GET", "/v1/events?limit=1000", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("events: %d %s", r.Status, r.Body)
	}
	var page struct {
		Items []apptest.Event `json:"items"`
	}
	r.JSON(t, &page)
	return page.Items
}

func scrape(t *testing.T, n *apptest.Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.App.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func grepLines(body, word string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
