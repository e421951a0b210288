package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/handlers"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// bench fanout --client goroutines measures each server as a process of
// its own, reached over loopback by a client of one goroutine per
// connection in this process: panelsync as a `serve` child, and with
// --peer a realtime server built on the centrifuge library as a second
// child, one after the other. Each server's CPU is read from /proc.

// fanoutOptions is what both servers' runs share.
type fanoutOptions struct {
	clients, ticks int
	gap            time.Duration
	// locations is how many locations panelsync's taps go round: one
	// location cannot take a refresh tap every 10 ms, as a tap while its
	// run is queued joins that run and writes no event.
	locations   int
	databaseURL string
	peer        bool
	peerDir     string
	peerBin     string
}

// peerChannel is the one channel the peer's clients subscribe to.
const peerChannel = "bench"

// warmTicks are sent before the clients connect, so that neither server's
// first tick pays for code paths and connections not yet warm.
const warmTicks = 3

// errDeduplicated is a tap that joined a run already queued: it wrote no
// event of its own.
var errDeduplicated = errors.New("the tap joined a run already queued")

// fanoutResult is one server's outcome.
type fanoutResult struct {
	// expected counts receipts expected: every client, every tick that
	// wrote an event (a failed tick counts, undelivered).
	expected  int
	latencies []time.Duration
	// serverCPU and benchCPU are user plus system CPU time of the server's
	// process and of this one, from the first tick until every client had
	// every tick (or the wait ended).
	serverCPU, benchCPU time.Duration
	deduplicated        int
	failed              int
	firstFailure        error
	lost                int
}

func benchFanoutGoroutines(ctx context.Context, env cmdEnv, o fanoutOptions) error {
	// Every server child inherits this limit, and this process holds every
	// client connection.
	if err := raiseFileLimit(uint64(o.clients) + 1024); err != nil {
		return fmt.Errorf("%d clients need %d open files: %w (raise ulimit -n)", o.clients, o.clients+1024, err)
	}
	load := loadAverage()
	tmp, err := os.MkdirTemp("", "panelsync-fanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The peer is built first, so that its build does not run beside a
	// measurement.
	var peerBin string
	if o.peer {
		if peerBin, err = peerBinary(ctx, env, o, tmp); err != nil {
			return err
		}
	}
	ps, err := panelsyncFanout(ctx, env, o, filepath.Join(tmp, "panelsync"))
	if err != nil {
		return fmt.Errorf("panelsync: %w", err)
	}
	var peer fanoutResult
	if o.peer {
		if peer, err = peerFanout(ctx, env, o, peerBin); err != nil {
			return fmt.Errorf("peer: %w", err)
		}
	}

	backend := "sqlite"
	if o.databaseURL != "" {
		backend = "mysql"
	}
	w := env.stdout
	fmt.Fprintf(w, "bench fanout: %d WebSocket subscribers, one goroutine each in this process; %d ticks %s apart; %d CPUs, load average %s at the start\n",
		o.clients, o.ticks, o.gap, runtime.NumCPU(), load)
	fmt.Fprintf(w, "  panelsync: a `serve` process on %s. A tick is a refresh tap (POST /v1/locations/{id}/sync), taken in turn at %d locations of one account\n", backend, o.locations)
	fmt.Fprintf(w, "    (a tap at a location whose refresh is still queued would join it and write no event); timed from the tap sent to its sync.requested.\n")
	if o.peer {
		fmt.Fprintf(w, "  peer: a centrifuge server process (memory broker, history and recovery on). A tick is one publish call of two messages; timed from the call sent to the first.\n")
	}
	fmt.Fprintf(w, "  %-10s %-26s %10s %10s %10s %11s %10s\n", "server", "delivered", "p50", "p99", "max", "server CPU", "bench CPU")
	printFanoutRow(w, "panelsync", ps)
	if o.peer {
		printFanoutRow(w, "peer", peer)
		if len(ps.latencies) > 0 && len(peer.latencies) > 0 {
			fmt.Fprintf(w, "  p99 panelsync / peer: %.2f\n", float64(percentile(ps.latencies, 99))/float64(percentile(peer.latencies, 99)))
		}
	}
	return nil
}

func printFanoutRow(w io.Writer, name string, r fanoutResult) {
	delivered := fmt.Sprintf("%d/%d (%.2f%%)", len(r.latencies), r.expected, 100*float64(len(r.latencies))/float64(max(r.expected, 1)))
	p50, p99, top := "-", "-", "-"
	if len(r.latencies) > 0 {
		p50, p99, top = ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)), ms(slices.Max(r.latencies))
	}
	fmt.Fprintf(w, "  %-10s %-26s %10s %10s %10s %10.2fs %9.2fs\n", name, delivered, p50, p99, top, r.serverCPU.Seconds(), r.benchCPU.Seconds())
	if r.deduplicated > 0 {
		fmt.Fprintf(w, "    %d ticks joined a run already queued and are left out: more --locations would avoid that\n", r.deduplicated)
	}
	if r.failed > 0 {
		fmt.Fprintf(w, "    %d ticks failed, the first with: %v\n", r.failed, r.firstFailure)
	}
	if r.lost > 0 {
		fmt.Fprintf(w, "    %d connections ended before the run did\n", r.lost)
	}
}

// panelsyncFanout runs panelsync as a `serve` process on a fresh database
// (or the scratch MySQL database given), with a simulated panel at every
// location, and measures refresh taps.
func panelsyncFanout(ctx context.Context, env cmdEnv, o fanoutOptions, dir string) (fanoutResult, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fanoutResult{}, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return fanoutResult{}, err
	}
	base := "http://" + addr

	// Seed the server's database before it starts.
	cfg := app.DefaultConfig()
	cfg.DataDir, cfg.DatabaseURL, cfg.BcryptCost, cfg.LogLevel = dir, o.databaseURL, 4, "error"
	seeder, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return fanoutResult{}, err
	}
	seed, err := seedBench(ctx, seeder, base, "Fanout", o.locations, 0)
	_ = seeder.Close()
	if err != nil {
		return fanoutResult{}, err
	}

	self, err := os.Executable()
	if err != nil {
		return fanoutResult{}, err
	}
	server := exec.CommandContext(ctx, self, "serve")
	// The settings go by their documented variables, which win over any
	// the caller's environment holds; so a test binary standing in for
	// panelsync reads them too.
	server.Env = append(os.Environ(),
		"PANELSYNC_ADDR="+addr, "PANELSYNC_DATA_DIR="+dir, "PANELSYNC_DATABASE_URL="+o.databaseURL,
		"PANELSYNC_NATS_URL=", "PANELSYNC_METRICS_ADDR=off", "PANELSYNC_LOG_LEVEL=error", "PANELSYNC_BCRYPT_COST=4")
	stopServer, err := startChild(server, env.stderr)
	if err != nil {
		return fanoutResult{}, err
	}
	defer stopServer()
	if err := waitReady(ctx, base); err != nil {
		return fanoutResult{}, err
	}
	token, err := httpLogin(base, seed.Email, seed.Password)
	if err != nil {
		return fanoutResult{}, err
	}

	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleet, err := sim.RunFleet(fleetCtx, base, seed.Panels.Panels, sim.Options{Users: 5})
	if err != nil {
		stopFleet()
		return fanoutResult{}, err
	}
	// The panels stop before the server does (defers run last first).
	defer fleet.Wait()
	defer stopFleet()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fleet.WaitConnected(waitCtx); err != nil {
		return fanoutResult{}, err
	}

	client := benchHTTPClient()
	defer client.CloseIdleConnections()
	// A panel is greeted before its link is recorded, and a tap reaches
	// only a panel recorded connected.
	if err := waitPanelsRecorded(ctx, client, base, token, len(seed.Panels.Panels)); err != nil {
		return fanoutResult{}, err
	}
	locations := make([]string, len(seed.Panels.Panels))
	for i, p := range seed.Panels.Panels {
		locations[i] = p.LocationID
	}
	tap := func(ctx context.Context, k int) (string, error) {
		var out handlers.SyncResponse
		status, err := callJSON(ctx, client, http.MethodPost, base+"/v1/locations/"+locations[k%len(locations)]+"/sync", token, `{"kind":"refresh"}`, &out)
		switch {
		case err != nil:
			return "", err
		case out.Deduplicated:
			return out.Run.ID, errDeduplicated
		case status != http.StatusAccepted || out.Run.ID == "":
			return "", fmt.Errorf("a tap answered %d without a run", status)
		}
		return out.Run.ID, nil
	}
	// Each panel's first link starts a users sync of its own; the warm
	// taps' runs and those finish before the clients connect.
	for k := range warmTicks {
		if _, err := tap(ctx, k); err != nil && !errors.Is(err, errDeduplicated) {
			return fanoutResult{}, fmt.Errorf("warm-up tap: %w", err)
		}
	}
	if err := waitQuiet(ctx, client, base, token, time.Minute); err != nil {
		return fanoutResult{}, err
	}

	epoch := time.Now()
	readers, err := startFanoutReaders(ctx, realtimeWire{base: base, token: token}, o.clients, o.ticks, epoch)
	if err != nil {
		return fanoutResult{}, err
	}
	defer readers.close()
	return measureTicks(ctx, o, readers, server.Process.Pid, tap)
}

// peerFanout runs the peer binary and measures publish calls.
func peerFanout(ctx context.Context, env cmdEnv, o fanoutOptions, bin string) (fanoutResult, error) {
	peer := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--channel", peerChannel)
	stdout, err := peer.StdoutPipe()
	if err != nil {
		return fanoutResult{}, err
	}
	stop, err := startChild(peer, env.stderr)
	if err != nil {
		return fanoutResult{}, err
	}
	defer stop()
	addr, err := readPeerAddr(stdout, 20*time.Second)
	if err != nil {
		return fanoutResult{}, err
	}

	client := benchHTTPClient()
	defer client.CloseIdleConnections()
	publish := func(ctx context.Context, seq int) (string, error) {
		_, err := callJSON(ctx, client, http.MethodPost, "http://"+addr+"/publish?seq="+strconv.Itoa(seq), "", "", nil)
		return strconv.Itoa(seq), err
	}
	// The warm publications go to the channel's history before any client
	// subscribes, under seqs no tick uses.
	for k := range warmTicks {
		if _, err := publish(ctx, o.ticks+k); err != nil {
			return fanoutResult{}, fmt.Errorf("warm-up publish: %w", err)
		}
	}
	readers, err := startFanoutReaders(ctx, newCentrifugeWire(addr, peerChannel), o.clients, o.ticks, time.Now())
	if err != nil {
		return fanoutResult{}, err
	}
	defer readers.close()
	return measureTicks(ctx, o, readers, peer.Process.Pid, publish)
}

// measureTicks calls tick o.ticks times, o.gap apart on a fixed schedule,
// each in a goroutine of its own so that a slow answer does not hold back
// the next; tick returns the key its message carries. It then waits until
// every client has every tick's message, or for 30 seconds more, and
// matches receipts to the ticks.
func measureTicks(ctx context.Context, o fanoutOptions, r *fanoutReaders, serverPID int, tick func(ctx context.Context, k int) (string, error)) (fanoutResult, error) {
	server0, bench0, err := serverAndBenchCPU(serverPID)
	if err != nil {
		return fanoutResult{}, err
	}
	sent := make([]time.Duration, o.ticks)
	keys := make([]string, o.ticks)
	errs := make([]error, o.ticks)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range o.ticks {
		if wait := time.Until(start.Add(time.Duration(k) * o.gap)); wait > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return fanoutResult{}, ctx.Err()
			case <-time.After(wait):
			}
		}
		sent[k] = time.Since(r.epoch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[k], errs[k] = tick(ctx, k)
		}()
	}
	wg.Wait()

	var res fanoutResult
	tickOf := make(map[string]int, o.ticks)
	for k, err := range errs {
		switch {
		case errors.Is(err, errDeduplicated):
			res.deduplicated++
		case err != nil:
			res.failed++
			if res.firstFailure == nil {
				res.firstFailure = err
			}
		default:
			tickOf[keys[k]] = k
		}
	}
	if err := r.waitFor(ctx, len(tickOf), time.Now().Add(30*time.Second)); err != nil {
		return fanoutResult{}, err
	}
	server1, bench1, err := serverAndBenchCPU(serverPID)
	if err != nil {
		return fanoutResult{}, err
	}
	r.close()
	res.serverCPU, res.benchCPU = server1-server0, bench1-bench0
	res.expected = len(r.conns) * (o.ticks - res.deduplicated)
	res.lost = int(r.lost.Load())
	for _, firsts := range r.firsts {
		for key, at := range firsts {
			if k, ok := tickOf[key]; ok {
				res.latencies = append(res.latencies, at-sent[k])
			}
		}
	}
	return res, nil
}

// peerBinary returns the peer binary to run: --peer-bin, or one built
// from --peer-dir into tmp.
func peerBinary(ctx context.Context, env cmdEnv, o fanoutOptions, tmp string) (string, error) {
	if o.peerBin != "" {
		st, err := os.Stat(o.peerBin)
		if err != nil {
			return "", fmt.Errorf("--peer-bin: %w", err)
		}
		if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("--peer-bin %s is not an executable file", o.peerBin)
		}
		return filepath.Abs(o.peerBin)
	}
	if _, err := os.Stat(filepath.Join(o.peerDir, "go.mod")); err != nil {
		return "", fmt.Errorf("--peer-dir %s holds no Go module (%v): run from the repository's root, point --peer-dir at its bench/peer, or give a built peer with --peer-bin", o.peerDir, err)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("building the peer needs the go command on PATH; or give a built peer with --peer-bin")
	}
	bin := filepath.Join(tmp, "peer")
	buildCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(buildCtx, goCmd, "build", "-C", o.peerDir, "-o", bin, ".")
	build.Stdout, build.Stderr = env.stderr, env.stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build the peer in %s: %w", o.peerDir, err)
	}
	return bin, nil
}

// readPeerAddr reads the address the peer prints when it is ready, which
// must be on loopback.
func readPeerAddr(stdout io.Reader, limit time.Duration) (string, error) {
	line := make(chan string, 1)
	go func() {
		// The peer prints nothing more; what follows is read to its end
		// so the pipe never fills.
		br := bufio.NewReader(stdout)
		s, _ := br.ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case s := <-line:
		addr := strings.TrimSpace(s)
		if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
			return "", fmt.Errorf("the peer did not print a 127.0.0.1 address when ready: %q", s)
		}
		return addr, nil
	case <-time.After(limit):
		return "", fmt.Errorf("the peer was not ready within %s", limit)
	}
}

// startChild starts cmd with its errors on stderr. The returned stop asks
// it to end with SIGTERM and kills it if it has not within 20 seconds; a
// child also dies if this process does.
func startChild(cmd *exec.Cmd, stderr io.Writer) (func(), error) {
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

// waitQuiet waits until every location's panel is connected and has had
// its users synced, and no run is queued or running, so that the ticks
// run alone.
func waitQuiet(ctx context.Context, client *http.Client, base, token string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var locs handlers.LocationPage
		if _, err := callJSON(ctx, client, http.MethodGet, base+"/v1/locations?limit="+strconv.Itoa(models.MaxLocationPageSize), token, "", &locs); err != nil {
			return err
		}
		quiet := true
		for _, l := range locs.Items {
			if l.Panel.Connection != string(models.PanelConnected) || l.Sync.UsersSyncedAt == nil {
				quiet = false
			}
		}
		open, err := runsOpen(ctx, client, base, token)
		if err != nil {
			return err
		}
		if quiet && !open {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s the panels are not all connected and synced, or runs are still open", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runsOpen reports whether any run of the token's account is queued or
// running.
func runsOpen(ctx context.Context, client *http.Client, base, token string) (bool, error) {
	for _, state := range []models.RunState{models.RunQueued, models.RunRunning} {
		var runs handlers.RunPage
		if _, err := callJSON(ctx, client, http.MethodGet, base+"/v1/runs?limit=1&state="+string(state), token, "", &runs); err != nil {
			return false, err
		}
		if len(runs.Items) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// waitPanelsRecorded waits until the account's locations show want
// panels connected.
func waitPanelsRecorded(ctx context.Context, client *http.Client, base, token string, want int) error {
	return pollUntil(ctx, 30*time.Second, 50*time.Millisecond, func() (string, error) {
		connected, cursor := 0, ""
		for {
			var page handlers.LocationPage
			pageURL := base + "/v1/locations?limit=" + strconv.Itoa(models.MaxLocationPageSize) + "&cursor=" + url.QueryEscape(cursor)
			if _, err := callJSON(ctx, client, http.MethodGet, pageURL, token, "", &page); err != nil {
				return "", err
			}
			for _, l := range page.Items {
				if l.Panel.Connection == string(models.PanelConnected) {
					connected++
				}
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if connected < want {
			return fmt.Sprintf("%d of %d panels recorded connected", connected, want), nil
		}
		return "", nil
	})
}

// benchHTTPClient keeps enough connections open for ticks in flight at
// once, so that a tick does not pay for a new connection.
func benchHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
}

// callJSON sends body (none if empty) with token (none if empty), and
// decodes a successful answer into out unless out is nil.
func callJSON(ctx context.Context, client *http.Client, method, url, token, body string, out any) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s answered %d: %.200s", method, req.URL.Path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
		}
	}
	return resp.StatusCode, nil
}

// loadAverage is the machine's load over the last 1, 5 and 15 minutes:
// other work shares the cores with both servers, so it is printed beside
// the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// freeLoopbackAddr finds a port on 127.0.0.1 no one listens on.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serverAndBenchCPU reads the CPU time of the server's process and of
// this one.
func serverAndBenchCPU(serverPID int) (time.Duration, time.Duration, error) {
	server, err := processCPUOf(serverPID)
	if err != nil {
		return 0, 0, err
	}
	bench, err := processCPUOf(os.Getpid())
	return server, bench, err
}

// processCPUOf reads a process's user plus system CPU time from
// /proc/<pid>/stat, whose counts are in the kernel's USER_HZ, 100 a
// second on Linux.
func processCPUOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

// parseProcStatCPU takes utime and stime (the 14th and 15th fields) from
// a /proc/<pid>/stat line. The command name, the 2nd field, is in
// parentheses and may hold spaces, so fields are counted after its end.
func parseProcStatCPU(stat []byte) (time.Duration, error) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command name in /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is the 3rd field, so utime is f[11] and stime f[12].
	if len(f) < 13 {
		return 0, errors.New("too few fields in /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	const userHZ = 100
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}
