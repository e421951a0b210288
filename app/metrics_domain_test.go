package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.yaml.in/yaml/v3"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

// metricsNode starts a node that serves its metrics, with one account and
// one location whose simulated panel is linked and has had its first sync.
type metricsNode struct {
	*apptest.Node
	acct  models.Account
	token string
	loc   models.LocationView
}

func startMetricsNode(t *testing.T, b dbtest.Backend, tweak func(*app.Config), opts sim.Options) metricsNode {
	t.Helper()
	cfg := apptest.Config(t, b)
	cfg.MetricsAddr = "127.0.0.1:0"
	if tweak != nil {
		tweak(&cfg)
	}
	n := apptest.Start(t, cfg)
	acct, token := n.Account(t, "Acme")
	loc, cred := n.Location(t, acct.ID, "HQ")
	n.Panel(t, cred, opts)
	return metricsNode{Node: n, acct: acct, token: token, loc: loc}
}

func (n metricsNode) scrape(t *testing.T) string {
	t.Helper()
	status, body := get(t, "http://"+n.App.MetricsAddr()+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("metrics: %d %.500s", status, body)
	}
	return body
}

// value is the sample of series (a name with its labels in the order the
// exposition writes them, sorted by name) in body, and whether it is there.
func value(body, series string) (float64, bool) {
	for line := range strings.Lines(body) {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// waitValue waits until series has a sample that ok accepts.
func (n metricsNode) waitValue(t *testing.T, series string, want string, ok func(float64) bool) {
	t.Helper()
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		body := n.scrape(t)
		v, found := value(body, series)
		if found && ok(v) {
			return true, ""
		}
		name, _, _ := strings.Cut(series, "{")
		return false, series + " is not " + want + "; the node exports:\n" + grepLines(body, name)
	})
}

func (n metricsNode) waitEqual(t *testing.T, series string, want float64) {
	t.Helper()
	n.waitValue(t, series, strconv.FormatFloat(want, 'g', -1, 64), func(v float64) bool { return v == want })
}

func grepLines(body, substr string) string {
	var out []string
	for line := range strings.Lines(body) {
		if strings.Contains(line, substr) && !strings.HasPrefix(line, "#") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}

// exported lists every series name body exposes: counters and gauges by
// name, histograms by their _bucket, _sum and _count series.
func exported(body string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.Lines(body) {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		default:
			names[f[2]] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bpanelsync_[a-zA-Z0-9_]+`)

// dashboardExprs returns every query of the dashboard, and fails on a
// panel that does not read the ${datasource} variable.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type string }) bool {
		return v.Name == "datasource" && v.Type == "datasource"
	}) {
		t.Errorf("%s has no datasource variable", path)
	}
	var exprs []string
	rows := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			rows++
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d queries; want ${datasource} and a query", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			if q.Datasource.UID != "${datasource}" || q.Expr == "" {
				t.Errorf("panel %q: a query on %q reads %q", p.Title, q.Datasource.UID, q.Expr)
			}
			exprs = append(exprs, q.Expr)
		}
	}
	if rows < 5 {
		t.Errorf("%s has %d rows, want Sync, Panels, Realtime, Nodes and Mail", path, rows)
	}
	return exprs
}

// alertExprs returns every rule's expression, and fails on a rule without
// a duration, a severity or the annotations that say what to do.
func alertExprs(t *testing.T, path string) (names, exprs []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if _, err := time.ParseDuration(r.For); err != nil || r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %q: for %q (%v), expr %q", r.Alert, r.For, err, r.Expr)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("rule %q: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 80 {
				t.Errorf("rule %q: the summary or the description (what to do) is missing", r.Alert)
			}
			names = append(names, r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	return names, exprs
}

// TestMetrics_DashboardAndAlerts_NameOnlyMetricsANodeExports loads the
// shipped Grafana dashboard and Prometheus rules and checks that every
// panelsync metric they query is one a running node exports, after one
// sync so that every series has been touched, and that the README's table
// lists every panelsync metric.
func TestMetrics_DashboardAndAlerts_NameOnlyMetricsANodeExports(t *testing.T) {
	n := startMetricsNode(t, dbtest.Backends(t)[0], nil, sim.Options{Users: 2})
	n.FirstSync(t, n.token, n.loc.Location.ID)
	// A run of a rank no node serves makes the stranded runs show too.
	if r := n.Do(t, "PATCH", "/v1/locations/"+n.loc.Location.ID, n.token, map[string]any{"rank": 5}); r.Status != http.StatusOK {
		t.Fatalf("set rank: %d %s", r.Status, r.Body)
	}
	n.Sync(t, n.token, n.loc.Location.ID, "refresh")
	if err := n.App.Engine().CheckRanks(t.Context()); err != nil {
		t.Fatal(err)
	}
	names := exported(n.scrape(t))

	alerts, alertQueries := alertExprs(t, "../deploy/prometheus/alerts.yml")
	for _, want := range []string{"PanelsyncSyncFailureRateHigh", "PanelsyncOldestQueuedRunTooOld",
		"PanelsyncNodeDown", "PanelsyncNodeHeartbeatStopped", "PanelsyncDatabaseUnreachable"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml lacks %s; it has %v", want, alerts)
		}
	}
	used := map[string]bool{}
	for _, file := range []struct {
		path  string
		exprs []string
	}{
		{"../deploy/grafana/panelsync.json", dashboardExprs(t, "../deploy/grafana/panelsync.json")},
		{"../deploy/prometheus/alerts.yml", alertQueries},
	} {
		for _, expr := range file.exprs {
			for _, name := range metricName.FindAllString(expr, -1) {
				used[name] = true
				if !names[name] {
					t.Errorf("%s queries %s, which the node does not export: %s", file.path, name, expr)
				}
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "panelsync_") && !strings.Contains(string(readme), "| `"+base+"` |") {
			t.Errorf("README's metrics table lacks %s", base)
		}
	}
	if len(used) < 20 {
		t.Errorf("the dashboard and alerts read %d metrics; some queries were not found", len(used))
	}
}

// TestMetrics_ATap_CountsRunsAndPanelCommands links a panel (which starts
// its first users sync, trigger checkin) and taps Sync Users (trigger app):
// each run counts once as started and once as succeeded with its kind and
// trigger, its duration and its panel's answer are measured, and the
// node's heartbeat, panels and dependencies show.
func TestMetrics_ATap_CountsRunsAndPanelCommands(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startMetricsNode(t, b, nil, sim.Options{Users: 2})
			n.FirstSync(t, n.token, n.loc.Location.ID)
			n.waitEqual(t, `panelsync_runs_started_total{kind="users",trigger="checkin"}`, 1)
			n.waitEqual(t, `panelsync_runs_finished_total{kind="users",outcome="succeeded",trigger="checkin"}`, 1)
			n.waitEqual(t, `panelsync_runs_started_total{kind="users",trigger="app"}`, 0)

			run := n.Sync(t, n.token, n.loc.Location.ID, "users").Run
			if got := n.WaitRun(t, n.token, run.ID); got.State != "succeeded" {
				t.Fatalf("tap: %+v", got)
			}
			n.waitEqual(t, `panelsync_runs_started_total{kind="users",trigger="app"}`, 1)
			n.waitEqual(t, `panelsync_runs_finished_total{kind="users",outcome="succeeded",trigger="app"}`, 1)
			n.waitEqual(t, `panelsync_run_duration_seconds_count{kind="users"}`, 2)

			body := n.scrape(t)
			for series, want := range map[string]float64{
				`panelsync_runs_finished_total{kind="users",outcome="failed",trigger="app"}`: 0,
				`panelsync_panels_connected`:                                                           1,
				`panelsync_panel_links_opening`:                                                        0,
				`panelsync_panel_command_timeouts_total{command="users.get"}`:                          0,
				`panelsync_dependency_up{dependency="database"}`:                                       1,
				`panelsync_dependency_up{dependency="bus"}`:                                            1,
				`panelsync_runs_queued{rank="0"}`:                                                      0,
				`panelsync_runs_queued_oldest_age_seconds{rank="0"}`:                                   0,
				`panelsync_batches_in_flight`:                                                          0,
				`panelsync_realtime_connections`:                                                       0,
				`panelsync_runs_finished_total{kind="refresh",outcome="cancelled",trigger="schedule"}`: 0,
			} {
				if got, ok := value(body, series); !ok || got != want {
					t.Errorf("%s = %v (exported %v), want %v", series, got, ok, want)
				}
			}
			if got, _ := value(body, `panelsync_panel_command_duration_seconds_count{command="users.get"}`); got < 2 {
				t.Errorf("users.get answers measured: %v, want at least 2", got)
			}
			if got, _ := value(body, `panelsync_node_heartbeats_total`); got < 1 {
				t.Errorf("heartbeats: %v, want at least the first", got)
			}
		})
	}
}

// TestMetrics_RunsOfAnUnservedRank_ShowAsQueuedAndAgeing queues a run and
// a batch at a rank no node serves: the queue depth and the oldest run's
// age per rank, and the batch in flight, show; cancelling the batch counts
// its run cancelled.
func TestMetrics_RunsOfAnUnservedRank_ShowAsQueuedAndAgeing(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startMetricsNode(t, b, nil, sim.Options{Users: 2})
			n.FirstSync(t, n.token, n.loc.Location.ID)
			if r := n.Do(t, "PATCH", "/v1/locations/"+n.loc.Location.ID, n.token, map[string]any{"rank": 5}); r.Status != http.StatusOK {
				t.Fatalf("set rank: %d %s", r.Status, r.Body)
			}
			r := n.Do(t, "POST", "/v1/sync", n.token, map[string]any{"kind": "refresh", "scope": "all"})
			if r.Status != http.StatusAccepted {
				t.Fatalf("start batch: %d %s", r.Status, r.Body)
			}
			var started struct {
				Batch struct {
					ID string `json:"id"`
				} `json:"batch"`
			}
			r.JSON(t, &started)

			n.waitEqual(t, `panelsync_batches_in_flight`, 1)
			n.waitEqual(t, `panelsync_runs_queued{rank="5"}`, 1)
			n.waitEqual(t, `panelsync_runs_queued{rank="0"}`, 0)
			n.waitValue(t, `panelsync_runs_queued_oldest_age_seconds{rank="5"}`, "above 0", func(v float64) bool { return v > 0 })

			if r := n.Do(t, "POST", "/v1/batches/"+started.Batch.ID+"/cancel", n.token, nil); r.Status != http.StatusOK {
				t.Fatalf("cancel batch: %d %s", r.Status, r.Body)
			}
			n.waitEqual(t, `panelsync_runs_finished_total{kind="refresh",outcome="cancelled",trigger="app"}`, 1)
			// A rank this node does not serve shows only while it has runs.
			apptest.Eventually(t, 10*time.Second, func() (bool, string) {
				body := n.scrape(t)
				_, found := value(body, `panelsync_runs_queued{rank="5"}`)
				return !found, grepLines(body, "panelsync_runs_queued")
			})
			n.waitEqual(t, `panelsync_runs_started_total{kind="refresh",trigger="app"}`, 0)
		})
	}
}

// TestMetrics_PanelThatDoesNotAnswer_CountsTimeoutsAndAFailedRun links a
// panel that answers nothing: its first sync times out and fails, which
// counts a command timeout and a failed run, and no latency.
func TestMetrics_PanelThatDoesNotAnswer_CountsTimeoutsAndAFailedRun(t *testing.T) {
	n := startMetricsNode(t, dbtest.Backends(t)[0], func(c *app.Config) {
		c.CommandTimeout = 300 * time.Millisecond
		c.MaxAttempts = 1
	}, sim.Options{Users: 2, TimeoutRate: 1})
	if run := n.FirstSync(t, n.token, n.loc.Location.ID); run.State != "failed" {
		t.Fatalf("first sync of a mute panel: %+v", run)
	}
	n.waitEqual(t, `panelsync_runs_finished_total{kind="users",outcome="failed",trigger="checkin"}`, 1)
	body := n.scrape(t)
	if got, _ := value(body, `panelsync_panel_command_timeouts_total{command="users.get"}`); got != 1 {
		t.Errorf("users.get timeouts: %v, want 1\n%s", got, grepLines(body, "panelsync_panel_command"))
	}
	if got, _ := value(body, `panelsync_panel_command_duration_seconds_count{command="users.get"}`); got != 0 {
		t.Errorf("a timed-out command was measured as answered: %v", got)
	}
}

// TestMetrics_RealtimeClient_CountsItsConnectionAndEachDelivery opens an
// Event Log socket: it counts as a connection while open, and an event
// written to the account counts as delivered, with its lag from commit.
func TestMetrics_RealtimeClient_CountsItsConnectionAndEachDelivery(t *testing.T) {
	n := startMetricsNode(t, dbtest.Backends(t)[0], nil, sim.Options{Users: 2})
	n.FirstSync(t, n.token, n.loc.Location.ID)
	before, _ := value(n.scrape(t), `panelsync_realtime_delivery_lag_seconds_count`)

	h := http.Header{}
	h.Set("Authorization", "Bearer "+n.token)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(n.BaseURL, "http")+"/v1/realtime", h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func(want string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil || !strings.Contains(string(data), `"type":"`+want+`"`) {
			t.Fatalf("want a %s frame, got %s %v", want, data, err)
		}
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe"}`)); err != nil {
		t.Fatal(err)
	}
	read("subscribed")
	n.waitEqual(t, `panelsync_realtime_connections`, 1)

	if _, err := n.App.Events().Append(context.Background(), models.NewEvent{
		AccountID: n.acct.ID, LocationID: n.loc.Location.ID, Type: "test.event", Message: "hello",
	}); err != nil {
		t.Fatal(err)
	}
	read("event")
	n.waitEqual(t, `panelsync_realtime_events_delivered_total{path="live"}`, 1)
	n.waitValue(t, `panelsync_realtime_delivery_lag_seconds_count`, "one more", func(v float64) bool { return v == before+1 })

	_ = conn.Close()
	n.waitEqual(t, `panelsync_realtime_connections`, 0)
}
