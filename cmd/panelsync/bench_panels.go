package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/panel/sim"
)

// Metrics the panels benchmark reads from the server.
const (
	metricPanelsConnected = "panelsync_panels_connected"
	metricPanelCheckins   = "panelsync_panel_checkins_total"
	metricLinksOpening    = "panelsync_panel_links_opening"
)

// Shape and bounds of the panels benchmark.
const (
	maxBenchPanels = 60000
	// warmPanels link before the baseline RSS is read, so that it includes
	// a started link registry and warmed pools, as bench idle's warm
	// connections do.
	warmPanels = 10
	// benchPanelUsers is each simulated panel's user count: small, since
	// the benchmark measures links and check-ins, not syncs.
	benchPanelUsers = 5
	// linkLimit bounds every wait for the fleet to be linked.
	linkLimit = 10 * time.Minute
	// firstSyncLimit bounds the wait for the users sync each panel's first
	// link starts.
	firstSyncLimit = 30 * time.Minute
	// exitLimit bounds how long a SIGTERMed server may take to exit.
	exitLimit = time.Minute
)

// panelsOptions are bench panels' validated flags.
type panelsOptions struct {
	panels          int
	databaseURL     string
	checkinInterval time.Duration
	checkinSeconds  int
}

func parsePanelsFlags(env cmdEnv, args []string) (panelsOptions, error) {
	fs := flag.NewFlagSet("bench panels", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var o panelsOptions
	fs.IntVar(&o.panels, "panels", 19000, "simulated panels, linked from helper processes of at most "+strconv.Itoa(clientsPerProcess)+" each")
	fs.StringVar(&o.databaseURL, "database-url", env.getenv("PANELSYNC_DATABASE_URL"), "MySQL DSN of a scratch database; empty uses a fresh SQLite file")
	fs.DurationVar(&o.checkinInterval, "checkin-interval", time.Second, "how often every panel checks in while check-ins are measured")
	fs.IntVar(&o.checkinSeconds, "checkin-seconds", 10, "how long check-ins are measured, in seconds")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.panels < 1 || o.panels > maxBenchPanels {
		errs = append(errs, fmt.Errorf("--panels must be 1..%d, got %d", maxBenchPanels, o.panels))
	}
	if o.checkinInterval < 100*time.Millisecond || o.checkinInterval > time.Hour {
		errs = append(errs, fmt.Errorf("--checkin-interval must be 100ms..1h, got %s", o.checkinInterval))
	}
	if o.checkinSeconds < 1 || o.checkinSeconds > 600 {
		errs = append(errs, fmt.Errorf("--checkin-seconds must be 1..600, got %d", o.checkinSeconds))
	}
	return o, errors.Join(errs...)
}

// benchPanels measures what linked panels cost a `serve` process: memory
// per idle linked panel, the time until every panel is linked again after
// the server restarts, and the check-ins it absorbs each second. The
// panels live in helper processes, so that the server's memory, CPU and
// file descriptors are its own.
func benchPanels(ctx context.Context, env cmdEnv, args []string) error {
	o, err := parsePanelsFlags(env, args)
	if err != nil {
		return err
	}
	total := o.panels + warmPanels
	const serverFileMargin = 600
	// The server holds one descriptor per link, and inherits this
	// process's limit; the margin covers its database, listeners and the
	// handshakes it refuses while a fleet relinks.
	if err := raiseFileLimit(uint64(total) + serverFileMargin); err != nil {
		return fmt.Errorf("the server needs %d open files for %d panels: %w (raise ulimit -n)", total+serverFileMargin, total, err)
	}
	tmp, err := os.MkdirTemp("", "panelsync-panels-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dataDir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return err
	}
	addr, metricsAddr, err := twoLoopbackAddrs()
	if err != nil {
		return err
	}
	base := "http://" + addr
	metricsURL := "http://" + metricsAddr + "/metrics"

	seedStart := time.Now()
	cfg := app.DefaultConfig()
	cfg.DataDir, cfg.DatabaseURL, cfg.BcryptCost, cfg.LogLevel = dataDir, o.databaseURL, 4, "error"
	seeder, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	seed, err := seedBench(ctx, seeder, base, "Panels", total, benchPanelUsers)
	_ = seeder.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "seeded %d locations in %s\n", total, time.Since(seedStart).Round(time.Second))
	warmCreds, fleetCreds := seed.Panels.Panels[:warmPanels], seed.Panels.Panels[warmPanels:]

	serverEnv := append(os.Environ(),
		"PANELSYNC_ADDR="+addr, "PANELSYNC_DATA_DIR="+dataDir, "PANELSYNC_DATABASE_URL="+o.databaseURL,
		"PANELSYNC_NATS_URL=", "PANELSYNC_METRICS_ADDR="+metricsAddr, "PANELSYNC_LOG_LEVEL=error", "PANELSYNC_BCRYPT_COST=4")
	server, err := startServe(ctx, env, serverEnv)
	if err != nil {
		return err
	}
	// The current server is stopped last of all, whichever it is then.
	defer func() { _, _ = server.terminate() }()
	if err := waitReady(ctx, base); err != nil {
		return err
	}
	token, err := httpLogin(base, seed.Email, seed.Password)
	if err != nil {
		return err
	}
	client := benchHTTPClient()
	defer client.CloseIdleConnections()

	warmCtx, stopWarm := context.WithCancel(ctx)
	warm, err := sim.RunFleet(warmCtx, base, warmCreds, sim.Options{Users: benchPanelUsers})
	if err != nil {
		stopWarm()
		return err
	}
	defer warm.Wait()
	defer stopWarm()
	if err := waitFirstLinks(ctx, client, base, token, metricsURL, warmPanels); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	settle()
	before, err := rssKB(server.pid())
	if err != nil {
		return err
	}

	// 1. Memory per idle linked panel.
	credsFile := sim.CredentialsFile{Server: base, UsersPerPanel: benchPanelUsers, Panels: fleetCreds}
	fleet, err := startFleetHelpers(ctx, env, tmp, credsFile, 0)
	if err != nil {
		return err
	}
	defer func() { fleet.stop() }()
	linkStart := time.Now()
	if err := waitCheckedIn(ctx, fleet, o.panels); err != nil {
		return err
	}
	if err := waitFirstLinks(ctx, client, base, token, metricsURL, total); err != nil {
		return err
	}
	linked := time.Now()
	fmt.Fprintf(env.stderr, "linked %d panels, checked each in and synced their users in %s\n", o.panels, linked.Sub(linkStart).Round(time.Second))
	settle()
	after, err := rssKB(server.pid())
	if err != nil {
		return err
	}
	backend := "sqlite"
	if o.databaseURL != "" {
		backend = "mysql"
	}
	w := env.stdout
	helpers := "1 helper process"
	if n := len(fleet.procs); n > 1 {
		helpers = fmt.Sprintf("%d helper processes", n)
	}
	fmt.Fprintf(w, "bench panels: %d simulated panels (in %s) and %d warm-up panels linked to a separate serve process on %s, %d CPUs\n",
		o.panels, helpers, warmPanels, backend, runtime.NumCPU())
	fmt.Fprintf(w, "  memory: server RSS %d KB before, %d KB after the first links (and their first syncs): %.1f KB per idle linked panel\n",
		before, after, float64(after-before)/float64(o.panels))

	// 2. Relink after a restart. Links closed by the server younger than
	// sim.DroppedLinkWindow count as dropped, so a small fleet that linked
	// quickly is given that long first.
	if !sleepCtx(ctx, time.Until(linked.Add(sim.DroppedLinkWindow+time.Second))) {
		return ctx.Err()
	}
	statsBefore, err := fleetTotals(fleet, warm)
	if err != nil {
		return err
	}
	sigterm := time.Now()
	exitTook, err := server.terminate()
	if err != nil {
		return err
	}
	restarted, err := startServe(ctx, env, serverEnv)
	if err != nil {
		return err
	}
	server = restarted
	started := time.Now()
	if err := waitGauge(ctx, metricsURL, metricPanelsConnected, total, linkLimit); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	relinked := time.Now()
	statsAfter, err := fleetTotals(fleet, warm)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  relink: the server exited %s after SIGTERM; all %d panels linked again %s after the new serve started (%s after SIGTERM)\n",
		exitTook.Round(time.Millisecond), total, relinked.Sub(started).Round(time.Millisecond), relinked.Sub(sigterm).Round(time.Millisecond))
	fmt.Fprintf(w, "    failed authentications %d, links accepted and dropped %d, drain closes %d, dial failures: %s\n",
		statsAfter.AuthRejections-statsBefore.AuthRejections, statsAfter.DroppedLinks-statsBefore.DroppedLinks,
		statsAfter.DrainCloses-statsBefore.DrainCloses, dialFailuresSince(statsBefore.DialFailures, statsAfter.DialFailures))
	// The restarted node holds the same links without what the first
	// links' syncs left behind in the first: its memory is what a node
	// holding the fleet costs day to day, once it has recorded every link
	// and taken every panel's first check-in. Read earlier, it would
	// include the links still queued for the database.
	if err := waitIdleNode(ctx, metricsURL, total); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	fmt.Fprintf(w, "    every link recorded and every panel's first check-in taken %s after the new serve started\n",
		time.Since(started).Round(time.Millisecond))
	settle()
	steady, err := rssKB(server.pid())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  memory on the restarted node: server RSS %d KB with every panel linked again: %.1f KB per idle linked panel\n",
		steady, float64(steady-before)/float64(o.panels))

	// 3. Check-ins absorbed per second. Without the counter there is
	// nothing to measure, so that is found out before the fleet restarts.
	// Its series may appear only once the new server has counted a
	// check-in, which every panel sends as it links.
	if err := waitMetric(ctx, metricsURL, metricPanelCheckins, 10*time.Second); err != nil {
		return err
	}
	fleet.stop()
	if err := waitGauge(ctx, metricsURL, metricPanelsConnected, warmPanels, linkLimit); err != nil {
		return fmt.Errorf("after the idle fleet stopped: %w", err)
	}
	busy, err := startFleetHelpers(ctx, env, tmp, credsFile, o.checkinInterval)
	if err != nil {
		return err
	}
	fleet = busy
	if err := waitGauge(ctx, metricsURL, metricPanelsConnected, total, linkLimit); err != nil {
		return fmt.Errorf("with check-ins every %s: %w", o.checkinInterval, err)
	}
	// Check-ins are read once a link is recorded, so the window opens
	// when the node has caught up with the links, not while it records
	// them.
	if err := waitGauge(ctx, metricsURL, metricLinksOpening, 0, linkLimit); err != nil {
		return fmt.Errorf("with check-ins every %s: %w", o.checkinInterval, err)
	}
	r, err := measureCheckins(ctx, metricsURL, fleet, time.Duration(o.checkinSeconds)*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  check-ins: offered %.0f/s (%d panels every %s), sent %.0f/s, absorbed %.0f/s over %s; %d links dropped, %d disconnects meanwhile\n",
		float64(o.panels)/o.checkinInterval.Seconds(), o.panels, o.checkinInterval, r.sent, r.absorbed, r.window.Round(time.Millisecond), r.dropped, r.disconnects)
	return nil
}

// checkinRates are what one window of check-ins showed.
type checkinRates struct {
	sent, absorbed       float64
	window               time.Duration
	dropped, disconnects int64
}

// measureCheckins reads the fleet's check-ins sent and the server's
// check-ins counted over window.
func measureCheckins(ctx context.Context, metricsURL string, fleet *fleetHelpers, window time.Duration) (checkinRates, error) {
	counted0, err := scrapeMetric(ctx, metricsURL, metricPanelCheckins)
	if err != nil {
		return checkinRates{}, err
	}
	st0, err := fleet.status()
	if err != nil {
		return checkinRates{}, err
	}
	start := time.Now()
	if !sleepCtx(ctx, window) {
		return checkinRates{}, ctx.Err()
	}
	counted1, err := scrapeMetric(ctx, metricsURL, metricPanelCheckins)
	if err != nil {
		return checkinRates{}, err
	}
	st1, err := fleet.status()
	if err != nil {
		return checkinRates{}, err
	}
	elapsed := time.Since(start)
	return checkinRates{
		sent:        float64(st1.Stats.Checkins-st0.Stats.Checkins) / elapsed.Seconds(),
		absorbed:    (counted1 - counted0) / elapsed.Seconds(),
		window:      elapsed,
		dropped:     st1.Stats.DroppedLinks - st0.Stats.DroppedLinks,
		disconnects: st1.Stats.Disconnects - st0.Stats.Disconnects,
	}, nil
}

// fleetTotals sums the helpers' counters and the in-process warm-up
// fleet's.
func fleetTotals(fleet *fleetHelpers, warm *sim.Fleet) (sim.Stats, error) {
	st, err := fleet.status()
	if err != nil {
		return sim.Stats{}, err
	}
	total := warm.Stats()
	total.Add(st.Stats)
	return total, nil
}

// dialFailuresSince lists the dial failures by kind that happened between
// two readings, most frequent first, or "none".
func dialFailuresSince(before, after map[string]int64) string {
	kinds := slices.Collect(maps.Keys(after))
	slices.SortFunc(kinds, func(a, b string) int {
		if d := (after[b] - before[b]) - (after[a] - before[a]); d != 0 {
			return int(d)
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range kinds {
		if n := after[k] - before[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// waitFirstLinks waits until the server holds want links and the users
// sync each panel's first link starts has finished, so that memory is read
// with no run in flight.
func waitFirstLinks(ctx context.Context, client *http.Client, base, token, metricsURL string, want int) error {
	if err := waitGauge(ctx, metricsURL, metricPanelsConnected, want, linkLimit); err != nil {
		return err
	}
	return pollUntil(ctx, firstSyncLimit, 200*time.Millisecond, func() (string, error) {
		open, err := runsOpen(ctx, client, base, token)
		if err != nil || !open {
			return "", err
		}
		return "the panels' first syncs have not finished", nil
	})
}

// waitCheckedIn waits until the fleet's panels are linked and have sent a
// check-in each.
func waitCheckedIn(ctx context.Context, fleet *fleetHelpers, n int) error {
	return pollUntil(ctx, linkLimit, 200*time.Millisecond, func() (string, error) {
		st, err := fleet.status()
		if err != nil || (st.Connected == n && st.Stats.Checkins >= int64(n)) {
			return "", err
		}
		return fmt.Sprintf("%d of %d panels are linked and %d check-ins sent", st.Connected, n, st.Stats.Checkins), nil
	})
}

// waitIdleNode waits until a node has recorded every link it took and
// counted at least checkins check-ins, which every panel sends as it
// links.
func waitIdleNode(ctx context.Context, metricsURL string, checkins int) error {
	return pollUntil(ctx, linkLimit, 100*time.Millisecond, func() (string, error) {
		opening, err := scrapeMetric(ctx, metricsURL, metricLinksOpening)
		if err != nil {
			return err.Error(), nil
		}
		counted, err := scrapeMetric(ctx, metricsURL, metricPanelCheckins)
		if err != nil {
			return err.Error(), nil
		}
		if opening > 0 || counted < float64(checkins) {
			return fmt.Sprintf("%.0f links are still being recorded and %.0f of %d first check-ins counted", opening, counted, checkins), nil
		}
		return "", nil
	})
}

// waitGauge waits until the server's gauge name reads want. Scrapes that
// fail, as they do while a server starts, are retried until limit.
func waitGauge(ctx context.Context, metricsURL, name string, want int, limit time.Duration) error {
	return pollUntil(ctx, limit, 50*time.Millisecond, func() (string, error) {
		v, err := scrapeMetric(ctx, metricsURL, name)
		switch {
		case err != nil:
			return err.Error(), nil
		case v != float64(want):
			return fmt.Sprintf("%s reads %.0f, not %d", name, v, want), nil
		}
		return "", nil
	})
}

// waitMetric waits until the server exports the metric name, and fails
// with errNoMetric if it has not within limit.
func waitMetric(ctx context.Context, metricsURL, name string, limit time.Duration) error {
	var absent error
	err := pollUntil(ctx, limit, 100*time.Millisecond, func() (string, error) {
		_, err := scrapeMetric(ctx, metricsURL, name)
		if errors.Is(err, errNoMetric) {
			absent = err
			return err.Error(), nil
		}
		return "", err
	})
	if err != nil && absent != nil {
		return absent
	}
	return err
}

// pollUntil calls check every interval until it is done, which it says
// with an empty reason to wait, or fails. After limit it fails with the
// last reason check gave.
func pollUntil(ctx context.Context, limit, interval time.Duration, check func() (waitReason string, err error)) error {
	for deadline := time.Now().Add(limit); ; {
		reason, err := check()
		switch {
		case err != nil:
			return err
		case reason == "":
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("after %s, %s", limit, reason)
		}
		if !sleepCtx(ctx, interval) {
			return ctx.Err()
		}
	}
}

// errNoMetric is a metric the server does not export.
var errNoMetric = errors.New("metric not exported")

// scrapeMetric reads one metric, summed over its labels, from a
// Prometheus text endpoint.
func scrapeMetric(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s answered %d", url, resp.StatusCode)
	}
	v, found, err := metricSum(string(body), name)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, fmt.Errorf("%w: the server's metrics have no %s, so this panelsync cannot say what it absorbed", errNoMetric, name)
	}
	return v, nil
}

// metricSum adds up every sample of the metric name in a Prometheus text
// exposition, whatever its labels, and reports whether there was one.
func metricSum(text, name string) (float64, bool, error) {
	var (
		sum   float64
		found bool
	)
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, name)
		if !ok || line == "" || line[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "{"):
			end := labelsEnd(rest)
			if end < 0 {
				return 0, false, fmt.Errorf("%s: unterminated labels in %q", name, line)
			}
			rest = rest[end+1:]
		case strings.HasPrefix(rest, " "), strings.HasPrefix(rest, "\t"):
		default:
			// Another metric whose name starts with this one.
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false, fmt.Errorf("%s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: value in %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

// labelsEnd returns the index of the brace that closes the label set s
// starts with, skipping quoted values and their escapes, or -1.
func labelsEnd(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == '}':
			return i
		}
	}
	return -1
}

// sleepCtx waits for d or until ctx ends, and reports whether ctx is still
// live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// twoLoopbackAddrs finds two different free ports on 127.0.0.1, for the
// API and the metrics.
func twoLoopbackAddrs() (string, string, error) {
	a, err := freeLoopbackAddr()
	if err != nil {
		return "", "", err
	}
	for range 10 {
		b, err := freeLoopbackAddr()
		if err != nil {
			return "", "", err
		}
		if b != a {
			return a, b, nil
		}
	}
	return "", "", errors.New("found no second free port on 127.0.0.1")
}

// serveProc is a `panelsync serve` child process.
type serveProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startServe starts panelsync serve with the given environment. The child
// dies with this process.
func startServe(ctx context.Context, env cmdEnv, environ []string) (*serveProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "serve")
	// The settings go by their documented variables, which win over any
	// the caller's environment holds.
	cmd.Env = environ
	cmd.Stderr = env.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &serveProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

func (s *serveProc) pid() int { return s.cmd.Process.Pid }

// terminate sends SIGTERM and waits for the server to exit, killing it
// after exitLimit. It returns how long the exit took. Calling it again
// after the server has exited does nothing.
func (s *serveProc) terminate() (time.Duration, error) {
	select {
	case <-s.done:
		return 0, nil
	default:
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return time.Since(start), nil
	case <-time.After(exitLimit):
		_ = s.cmd.Process.Kill()
		<-s.done
		return time.Since(start), fmt.Errorf("the server had not exited %s after SIGTERM, and was killed", exitLimit)
	}
}

// fleetStatus is what a panel-fleet helper answers a "stats" line with.
type fleetStatus struct {
	Connected int       `json:"connected"`
	Stats     sim.Stats `json:"stats"`
}

// fleetHelper is one panel-fleet helper process, asked for its status
// over stdin and stdout lines.
type fleetHelper struct {
	stdin io.WriteCloser
	out   *bufio.Reader
	stop  func()
}

// startFleetHelper starts `bench panel-fleet` on a credentials file with
// extra flags, and waits for it to say it is ready. Its panels are then
// dialling, not yet linked.
func startFleetHelper(ctx context.Context, env cmdEnv, credsPath string, flags ...string) (*fleetHelper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"bench", "panel-fleet", "--credentials", credsPath}, flags...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stopChild, err := startChild(cmd, env.stderr)
	if err != nil {
		return nil, err
	}
	h := &fleetHelper{stdin: stdin, out: bufio.NewReader(stdout)}
	// Closing stdin asks the helper to stop its panels and exit; the
	// SIGTERM that follows only matters if it does not.
	h.stop = func() { _ = stdin.Close(); stopChild() }
	if line, err := h.out.ReadString('\n'); err != nil || line != "ready\n" {
		h.stop()
		return nil, fmt.Errorf("panel helper did not start: %q %v", line, err)
	}
	return h, nil
}

// status asks the helper for its connected count and counters.
func (h *fleetHelper) status() (fleetStatus, error) {
	if _, err := io.WriteString(h.stdin, "stats\n"); err != nil {
		return fleetStatus{}, fmt.Errorf("ask the panel helper: %w", err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		return fleetStatus{}, fmt.Errorf("read the panel helper's answer: %w", err)
	}
	var st fleetStatus
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return fleetStatus{}, fmt.Errorf("the panel helper answered %q: %w", line, err)
	}
	return st, nil
}

// fleetHelpers are the helper processes that hold one fleet between them,
// each within the per-process file limit.
type fleetHelpers struct {
	procs []*fleetHelper
}

// startFleetHelpers writes the panels of f into credentials files under
// dir, at most clientsPerProcess each, and starts a helper on each. A
// checkin of 0 leaves the check-in interval to the server's hello.
func startFleetHelpers(ctx context.Context, env cmdEnv, dir string, f sim.CredentialsFile, checkin time.Duration) (*fleetHelpers, error) {
	var flags []string
	if checkin > 0 {
		flags = []string{"--checkin-interval", checkin.String()}
	}
	fh := &fleetHelpers{}
	for i := 0; i < len(f.Panels); i += clientsPerProcess {
		part := f
		part.Panels = f.Panels[i:min(i+clientsPerProcess, len(f.Panels))]
		path := filepath.Join(dir, fmt.Sprintf("panels-%d.json", i/clientsPerProcess))
		if err := sim.WriteCredentialsFile(path, part); err != nil {
			fh.stop()
			return nil, err
		}
		h, err := startFleetHelper(ctx, env, path, flags...)
		if err != nil {
			fh.stop()
			return nil, err
		}
		fh.procs = append(fh.procs, h)
	}
	return fh, nil
}

// status sums every helper's status.
func (fh *fleetHelpers) status() (fleetStatus, error) {
	var total fleetStatus
	for _, h := range fh.procs {
		st, err := h.status()
		if err != nil {
			return fleetStatus{}, err
		}
		total.Connected += st.Connected
		total.Stats.Add(st.Stats)
	}
	return total, nil
}

// stop stops every helper and waits for them. Calling it again does
// nothing.
func (fh *fleetHelpers) stop() {
	for _, h := range fh.procs {
		h.stop()
	}
	fh.procs = nil
}

// benchPanelFleet is the panel-fleet helper of bench panels and bench
// all-locations: it links the panels of a credentials file and says
// "ready"; each "stats" line on its stdin is answered with a JSON line of
// its connected count and counters; it stops when its stdin closes.
func benchPanelFleet(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench panel-fleet", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	path := fs.String("credentials", "", "credentials file")
	latency := fs.Duration("latency", 0, "answer latency")
	checkin := fs.Duration("checkin-interval", 0, "check-in interval; 0 uses the one the server's hello asks for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *checkin < 0 || *latency < 0 {
		return errors.New("--checkin-interval and --latency must not be negative")
	}
	file, err := sim.LoadCredentialsFile(*path)
	if err != nil {
		return err
	}
	if err := raiseFileLimit(uint64(len(file.Panels)) + 512); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fleet, err := sim.RunFleet(ctx, file.Server, file.Panels, sim.Options{Users: file.UsersPerPanel, Latency: *latency, CheckinInterval: *checkin})
	if err != nil {
		return err
	}
	defer fleet.Wait()
	defer cancel()
	fmt.Fprintln(env.stdout, "ready")

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	enc := json.NewEncoder(env.stdout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if line != "stats" {
				return fmt.Errorf("unknown request %q; the helper answers only \"stats\"", line)
			}
			if err := enc.Encode(fleetStatus{Connected: fleet.ConnectedCount(), Stats: fleet.Stats()}); err != nil {
				return err
			}
		}
	}
}
