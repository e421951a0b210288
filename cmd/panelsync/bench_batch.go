package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
	"github.com/panelsync/panelsync/realtime"
)

// benchAllLocations times an All-Locations users sync: N locations whose
// simulated panels (in a helper process) answer in a set latency, from the
// POST to the batch.finished event, beside the ideal ceil(N/C) × latency.
func benchAllLocations(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench all-locations", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	n := fs.Int("locations", 1000, "locations, each with a simulated panel")
	users := fs.Int("users", 50, "users per panel")
	latency := fs.Duration("latency", 200*time.Millisecond, "how long each panel takes to answer")
	workers := fs.Int("workers", 32, "sync runs in flight (C)")
	databaseURL := fs.String("database-url", env.getenv("PANELSYNC_DATABASE_URL"), "MySQL DSN of a scratch database; empty uses a fresh SQLite file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the batch to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 19000 || *workers < 1 || *workers > 1024 {
		return fmt.Errorf("--locations must be 1..19000 and --workers 1..1024")
	}
	if err := raiseFileLimit(uint64(*n) + 512); err != nil {
		return fmt.Errorf("need %d open files: %w", *n+512, err)
	}
	a, base, stop, err := benchNode(ctx, *databaseURL, *workers)
	if err != nil {
		return err
	}
	defer stop()
	seedStart := time.Now()
	seed, err := seedBench(ctx, a, base, "Dealer", *n, *users)
	if err != nil {
		return err
	}
	stopPanels, err := startBenchPanels(ctx, env, a, seed, *latency)
	if err != nil {
		return err
	}
	defer stopPanels()
	// Each panel's first link starts a users sync of its own; the batch
	// waits for them to end, or it would find most locations already
	// syncing and time only the rest.
	if err := waitFirstSyncs(ctx, a, seed.AccountID, 30*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "seeded and linked %d panels, and synced their users, in %s\n", *n, time.Since(seedStart).Round(time.Second))

	tokens, err := a.Auth().Login(ctx, seed.Email, seed.Password, "127.0.0.1")
	if err != nil {
		return err
	}
	finished := make(chan string, 4)
	unsubscribe, err := realtime.SubscribeAll(a.Bus(), func(e realtime.Event) {
		if e.Type == models.EventBatchFinished {
			finished <- e.Message
		}
	})
	if err != nil {
		return err
	}
	defer unsubscribe()

	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/sync", strings.NewReader(`{"kind":"users","scope":"all"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	postTook := time.Since(start)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/sync answered %d: %s", resp.StatusCode, body)
	}
	var summary string
	select {
	case summary = <-finished:
	case <-time.After(30 * time.Minute):
		return fmt.Errorf("no batch.finished within 30 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
	took := time.Since(start)
	ideal := time.Duration((*n+*workers-1) / *workers) * *latency
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	backend := "sqlite"
	if *databaseURL != "" {
		backend = "mysql"
	}
	fmt.Fprintf(env.stdout, "bench all-locations: N=%d, %d users per panel, panels answer in %s, C=%d, %s\n", *n, *users, *latency, *workers, backend)
	fmt.Fprintf(env.stdout, "  POST answered in %s; batch.finished after %s (ideal %s, %.2fx): %s\n",
		ms(postTook), took.Round(time.Millisecond), ideal, float64(took)/float64(ideal), summary)
	fmt.Fprintf(env.stdout, "  node peak RSS %d MB\n", ru.Maxrss/1024)
	return nil
}

// startBenchPanels links a seed's panels from a helper process, so that
// their work and memory are not the node's, and waits until the node has
// recorded every one connected. The returned function stops the panels;
// call it before stopping the node.
func startBenchPanels(ctx context.Context, env cmdEnv, a *app.App, seed app.SeedResult, latency time.Duration) (func(), error) {
	dir, err := os.MkdirTemp("", "panelsync-panels-")
	if err != nil {
		return nil, err
	}
	credsPath := filepath.Join(dir, "panels.json")
	if err := sim.WriteCredentialsFile(credsPath, seed.Panels); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	helper, err := startFleetHelper(ctx, env, credsPath, "--latency", latency.String())
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := func() {
		helper.stop()
		os.RemoveAll(dir)
	}
	n := len(seed.Panels.Panels)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var connected int64
		a.Store().DB().Model(&models.Panel{}).Where("account_id = ? AND connection = ?", seed.AccountID, models.PanelConnected).Count(&connected)
		if int(connected) == n {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("only %d of %d panels connected", connected, n)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		}
	}
}
