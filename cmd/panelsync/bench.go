package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
	"github.com/panelsync/panelsync/realtime"
)

// benchmarks lists the bench subcommands.
func benchmarks() map[string]func(ctx context.Context, env cmdEnv, args []string) error {
	return map[string]func(ctx context.Context, env cmdEnv, args []string) error{
		"tap":           benchTap,
		"fanout":        benchFanout,
		"idle":          benchIdle,
		"all-locations": benchAllLocations,
		"import":        benchImport,
		"panels":        benchPanels,
		// idle-clients, fanout-clients and panel-fleet are helper processes
		// of the above.
		"idle-clients":   benchIdleClients,
		"fanout-clients": benchFanoutClients,
		"panel-fleet":    benchPanelFleet,
	}
}

func runBench(ctx context.Context, env cmdEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.stderr, "Usage: panelsync bench <name> [flags]\n\nBenchmarks:\n  tap     sequential SYNC USERS taps on one simulated panel: POST to committed sync.succeeded\n  fanout  events to thousands of realtime subscribers: delivered and latency\n  idle    memory per idle realtime connection, on a separate server process\n  all-locations  an All-Locations users sync of N simulated panels, beside the ideal time\n  import  a user import applied across N locations, beside the bound; and parsing a large data file\n  panels  linked panels on a separate server process: memory per idle link, relink after a restart, check-ins absorbed per second")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	b, ok := benchmarks()[args[0]]
	if !ok {
		return fmt.Errorf("unknown benchmark %q", args[0])
	}
	return b(ctx, env, args[1:])
}

// benchNode starts a node for a benchmark: on the given MySQL DSN, or on a
// fresh SQLite file in a temporary folder.
func benchNode(ctx context.Context, databaseURL string, workers int) (*app.App, string, func(), error) {
	dir, err := os.MkdirTemp("", "panelsync-bench-")
	if err != nil {
		return nil, "", nil, err
	}
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = "off"
	cfg.DataDir = dir
	cfg.DatabaseURL = databaseURL
	cfg.Workers = workers
	cfg.AccountRuns = workers
	cfg.BcryptCost = 4
	cfg.LogLevel = "error"
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	ln, err := a.Listen()
	if err != nil {
		_ = a.Close()
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	serveCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Serve(serveCtx, ln) }()
	stop := func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
	return a, "http://" + ln.Addr().String(), stop, nil
}

func benchTap(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench tap", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	taps := fs.Int("taps", 200, "sequential taps")
	users := fs.Int("users", 50, "users on the simulated panel; every tap is a full sync of all of them")
	databaseURL := fs.String("database-url", env.getenv("PANELSYNC_DATABASE_URL"), "MySQL DSN of a scratch database; empty uses a fresh SQLite file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *taps < 1 || *taps > 100000 || *users < 1 || *users > sim.MaxUsers {
		return fmt.Errorf("--taps must be 1..100000 and --users 1..%d", sim.MaxUsers)
	}
	a, base, stop, err := benchNode(ctx, *databaseURL, 8)
	if err != nil {
		return err
	}
	defer stop()

	seed, err := seedBench(ctx, a, base, "Bench", 1, 0)
	if err != nil {
		return err
	}
	loc := seed.Panels.Panels[0].LocationID
	// Every tap re-checks every record, so each moves and diffs all users.
	full := true
	if _, err := a.Store().UpdateLocation(ctx, models.SystemActor(seed.AccountID, "bench"), loc, models.LocationSettings{ForceUpdateAll: &full}); err != nil {
		return err
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleet, err := sim.RunFleet(fleetCtx, base, seed.Panels.Panels, sim.Options{Users: *users})
	if err != nil {
		stopFleet()
		return err
	}
	// The panels stop before the node does (defers run last first).
	defer fleet.Wait()
	defer stopFleet()
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := fleet.WaitConnected(waitCtx); err != nil {
		return err
	}
	// The panel's first link starts a full users sync of its own; a tap
	// during it would only join that run.
	if err := waitFirstSyncs(ctx, a, seed.AccountID, 30*time.Second); err != nil {
		return err
	}
	tokens, err := a.Auth().Login(ctx, seed.Email, seed.Password, "127.0.0.1")
	if err != nil {
		return err
	}

	// Committed events arrive here from the bus, as every node's clients
	// get them.
	succeeded := make(chan string, 16)
	unsubscribe, err := realtime.SubscribeAll(a.Bus(), func(e realtime.Event) {
		if e.Type == models.EventSyncSucceeded && e.RunID != nil {
			succeeded <- *e.RunID
		} else if e.Type == models.EventSyncFailed && e.RunID != nil {
			succeeded <- "failed:" + *e.RunID
		}
	})
	if err != nil {
		return err
	}
	defer unsubscribe()

	client := &http.Client{Timeout: 10 * time.Second}
	tap := func() (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/locations/"+loc+"/sync", bytes.NewBufferString(`{"kind":"users"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return 0, fmt.Errorf("tap answered %d: %s", resp.StatusCode, body)
		}
		var out struct {
			Run struct {
				ID string `json:"id"`
			} `json:"run"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return 0, err
		}
		for {
			select {
			case id := <-succeeded:
				if id == "failed:"+out.Run.ID {
					return 0, fmt.Errorf("run %s failed", out.Run.ID)
				}
				if id == out.Run.ID {
					return time.Since(start), nil
				}
			case <-time.After(10 * time.Second):
				return 0, fmt.Errorf("no sync.succeeded for run %s within 10s", out.Run.ID)
			}
		}
	}
	// A few taps warm the connection pools and code paths first.
	for range 5 {
		if _, err := tap(); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, 0, *taps)
	began := time.Now()
	for range *taps {
		d, err := tap()
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(began)
	backend := "sqlite"
	if *databaseURL != "" {
		backend = "mysql"
	}
	fmt.Fprintf(env.stdout, "bench tap: %d sequential SYNC USERS taps, %d users per full sync, %s, %d CPUs\n", *taps, *users, backend, numCPU())
	fmt.Fprintf(env.stdout, "  POST to committed sync.succeeded: p50 %s  p90 %s  p99 %s  max %s  (%.0f taps/s)\n",
		ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)), ms(slices.Max(lat)), float64(*taps)/elapsed.Seconds())
	return nil
}

// percentile returns the p-th percentile by the nearest-rank method.
func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// startCPUProfile profiles the process into path until the returned
// function is called; an empty path profiles nothing.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// seedBench creates a benchmark's account with its owner and n locations,
// under an e-mail of its own so benchmarks can share a scratch database.
func seedBench(ctx context.Context, a *app.App, base, name string, n, usersPerPanel int) (app.SeedResult, error) {
	return app.SeedAccount(ctx, a.Store(), a.Auth(), app.SeedOptions{
		AccountName:   name,
		OwnerEmail:    strings.ToLower(name) + "+" + strings.ToLower(models.NewID()[24:]) + "@bench.local",
		Locations:     n,
		UsersPerPanel: usersPerPanel,
		Server:        base,
	})
}
