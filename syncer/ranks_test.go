package syncer_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
	"github.com/panelsync/panelsync/syncer"
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

// After an outage of the database that silenced every node, the peer
// serving a rank looks lost only because it could not beat either: the
// check does not call its runs stranded until it has itself reached the
// database for NodeLostAfter, and a peer that stays silent that long is
// judged then.
func TestRanks_AfterADatabaseOutage_PeerIsJudgedOnlyAfterAFairWait(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			store := dbtest.OpenMigrated(t, b)
			outage := dbtest.InjectOutage(t, store.DB())
			acct, err := store.CreateAccount(ctx, "Acme")
			if err != nil {
				t.Fatal(err)
			}
			actor := models.SystemActor(acct.ID, "test")
			name, rank := "Depot", 5
			loc, err := store.CreateLocation(ctx, actor, models.NewLocation{
				Settings: models.LocationSettings{Name: &name}, PanelSerial: "RK-0001", SecretHash: strings.Repeat("0", 64),
			})
			if err == nil {
				loc, err = store.UpdateLocation(ctx, actor, loc.Location.ID, models.LocationSettings{Rank: &rank})
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := store.EnqueueRun(ctx, models.Run{AccountID: acct.ID, LocationID: loc.Location.ID, Kind: models.RunUsers,
				Mode: models.ModeFull, TriggerSource: models.TriggerApp, AvailableAt: time.Now().UTC(), WorkerRank: rank}); err != nil {
				t.Fatal(err)
			}
			const lostAfter = 300 * time.Millisecond
			peerBeat := func(age time.Duration) {
				t.Helper()
				now, err := store.Now(ctx)
				if err == nil {
					err = store.NodeHeartbeat(ctx, "peer", "5", now.Add(-age))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			engine := syncer.New(syncer.Config{Ranks: []int{1}, NodeLostAfter: lostAfter}, store, models.NewEventLog(store, nil), nil, nil)
			stranded := func() []syncer.StrandedRank {
				t.Helper()
				if err := engine.CheckRanks(ctx); err != nil {
					t.Fatal(err)
				}
				return engine.Stranded()
			}

			// The peer beats while the check settles in.
			for deadline := time.Now().Add(2 * lostAfter); time.Now().Before(deadline); {
				peerBeat(0)
				if got := stranded(); len(got) > 0 {
					t.Fatalf("stranded %+v while the peer serving rank 5 beats", got)
				}
				time.Sleep(lostAfter / 10)
			}

			// Nobody reaches the database; when it is back, the peer's
			// last heartbeat is older than NodeLostAfter.
			outage.Begin()
			if err := engine.CheckRanks(ctx); err == nil {
				t.Fatal("a check during the outage succeeded")
			}
			outage.End()
			peerBeat(2 * lostAfter)
			if got := stranded(); len(got) > 0 {
				t.Fatalf("stranded %+v on the first check after the outage, before the peer could beat again", got)
			}

			// The peer never beats again: after the fair wait its rank is
			// stranded.
			apptest.Eventually(t, 10*time.Second, func() (bool, string) {
				got := stranded()
				return slices.Equal(got, []syncer.StrandedRank{{Rank: 5, Queued: 1}}), "the silent peer's rank is not stranded"
			})
			events, err := store.ListEvents(ctx, models.EventQuery{AccountID: acct.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			warnings := 0
			for _, e := range events {
				if e.Type == models.EventRunsStranded {
					warnings++
				}
			}
			if warnings != 1 {
				t.Fatalf("%d runs.stranded warnings, want 1, after the fair wait", warnings)
			}
		})
	}
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
