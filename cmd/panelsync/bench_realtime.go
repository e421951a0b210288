package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
)

// benchDialer opens many client sockets cheaply: small buffers, as the
// benchmark clients only read short frames.
func benchDialer() *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
}

func wsBase(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/v1/realtime" }

// openSubscribers dials n realtime clients with token, each subscribed to
// the whole account.
func openSubscribers(ctx context.Context, base, token string, n int) ([]*websocket.Conn, error) {
	d := benchDialer()
	w := realtimeWire{base: base, token: token}
	return dialEach(ctx, n, func(ctx context.Context, _ int) (*websocket.Conn, error) { return w.open(ctx, d) })
}

// dialEach opens n connections with open and waits for all of them. At
// most 64 dial at once, as a fleet of phones reconnecting would. If one
// fails, all are closed and the first failure is returned.
func dialEach(ctx context.Context, n int, open func(ctx context.Context, i int) (*websocket.Conn, error)) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 64)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", i, err)
				}
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, firstErr
	}
	return conns, nil
}

// benchFanout measures an event's way from commit to thousands of
// subscribers. With the epoll client this process is the server and writes
// the events; the subscribers live in a helper process, as they would on
// other machines, so that the server's scheduler and heap are its own.
// Both processes read the same clock. The goroutines client, and --peer,
// are benchFanoutGoroutines.
func benchFanout(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench fanout", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	clients := fs.Int("clients", 2000, "WebSocket subscribers on one account")
	events := fs.Int("events", 100, "events written")
	gap := fs.Duration("gap", 10*time.Millisecond, "pause between events")
	databaseURL := fs.String("database-url", env.getenv("PANELSYNC_DATABASE_URL"), "MySQL DSN of a scratch database; empty uses a fresh SQLite file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server side of the run to this file (epoll client only)")
	client := fs.String("client", "epoll", "epoll: one epoll loop reads every subscriber in a helper process, beside an in-process server writing events; goroutines: a goroutine per subscriber in this process, against panelsync as a separate serve process whose events are refresh taps")
	locations := fs.Int("locations", 100, "goroutines client: locations of the account the taps go round (one a tick by default), so that no tap finds its location's refresh still queued")
	peer := fs.Bool("peer", false, "also run a centrifuge-based peer server with the same goroutines client, and print both side by side (implies --client goroutines)")
	peerDir := fs.String("peer-dir", "bench/peer", "with --peer: the peer's Go module, built with the go command")
	peerBin := fs.String("peer-bin", "", "with --peer: a peer binary already built, instead of building --peer-dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *peer && !set["client"] {
		*client = "goroutines"
	}
	switch {
	case *clients < 1 || *clients > clientsPerProcess || *events < 1 || *events > 100000 || *gap < 0 || *gap > 10*time.Second:
		return fmt.Errorf("--clients must be 1..%d, --events 1..100000 and --gap 0..10s", clientsPerProcess)
	case *client != "epoll" && *client != "goroutines":
		return fmt.Errorf("--client must be epoll or goroutines, not %q", *client)
	case *peer && *client != "goroutines":
		return errors.New("--peer measures both servers with the goroutines client; leave out --client epoll")
	case (set["peer-dir"] || set["peer-bin"]) && !*peer:
		return errors.New("--peer-dir and --peer-bin go with --peer")
	case set["peer-dir"] && set["peer-bin"]:
		return errors.New("give --peer-dir or --peer-bin, not both")
	case *client == "goroutines" && set["cpuprofile"]:
		return errors.New("--cpuprofile profiles the in-process server of the epoll client; the goroutines client's server is a process of its own")
	case *client == "epoll" && set["locations"]:
		return errors.New("--locations goes with --client goroutines, whose events are taps")
	case *locations < 1 || *locations > models.MaxLocationPageSize:
		return fmt.Errorf("--locations must be 1..%d", models.MaxLocationPageSize)
	case *peerDir == "":
		return errors.New("--peer-dir must not be empty")
	}
	if *client == "goroutines" {
		return benchFanoutGoroutines(ctx, env, fanoutOptions{
			clients: *clients, ticks: *events, gap: *gap, locations: *locations, databaseURL: *databaseURL,
			peer: *peer, peerDir: *peerDir, peerBin: *peerBin,
		})
	}
	a, base, stop, err := benchNode(ctx, *databaseURL, 8)
	if err != nil {
		return err
	}
	defer stop()
	seed, err := seedBench(ctx, a, base, "Fanout", 1, 0)
	if err != nil {
		return err
	}
	tokens, err := a.Auth().Login(ctx, seed.Email, seed.Password, "127.0.0.1")
	if err != nil {
		return err
	}
	first, err := a.Store().LastEventOffset(ctx, seed.AccountID)
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	wait := time.Duration(*events)*(*gap) + 30*time.Second
	helper := exec.CommandContext(ctx, self, "bench", "fanout-clients", "--base", base,
		"--connections", strconv.Itoa(*clients), "--events", strconv.Itoa(*events),
		"--first", strconv.FormatInt(first, 10), "--timeout", wait.String())
	helper.Env = append(os.Environ(), "PANELSYNC_BENCH_TOKEN="+tokens.AccessToken)
	helper.Stderr = env.stderr
	stdout, err := helper.StdoutPipe()
	if err != nil {
		return err
	}
	if err := helper.Start(); err != nil {
		return err
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("client helper failed: %q %v", line, err)
	}

	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	// started[k] is when event k's write began and committed[k] when its
	// transaction committed: latency is reported from both.
	started := make([]int64, *events)
	committed := make([]int64, *events)
	locID := seed.Panels.Panels[0].LocationID
	for k := range *events {
		started[k] = time.Now().UnixNano()
		err := a.Store().Tx(ctx, func(ctx context.Context) error {
			// Registered before the event's own publish, so it runs first,
			// the moment the transaction has committed.
			models.AfterCommit(ctx, func() { committed[k] = time.Now().UnixNano() })
			_, err := a.Events().Append(ctx, models.NewEvent{
				AccountID: seed.AccountID, LocationID: locID, Type: "bench.tick", Message: "tick " + strconv.Itoa(k),
			})
			return err
		})
		if err != nil {
			stopProfile()
			return err
		}
		time.Sleep(*gap)
	}
	received := make([]int64, *clients**events)
	err = binary.Read(out, binary.LittleEndian, received)
	stopProfile()
	if err != nil {
		return fmt.Errorf("read the clients' receipt times: %w", err)
	}

	var fromCommit, fromStart []time.Duration
	for i, at := range received {
		if at == 0 {
			continue
		}
		k := i % *events
		fromCommit = append(fromCommit, time.Duration(at-committed[k]))
		fromStart = append(fromStart, time.Duration(at-started[k]))
	}
	expected := len(received)
	backend := "sqlite"
	if *databaseURL != "" {
		backend = "mysql"
	}
	fmt.Fprintf(env.stdout, "bench fanout: %d subscribers (in a helper process) on one account, %d events %s apart, %s, %d CPUs\n", *clients, *events, *gap, backend, runtime.NumCPU())
	fmt.Fprintf(env.stdout, "  delivered %d/%d (%.2f%%)\n", len(fromCommit), expected, 100*float64(len(fromCommit))/float64(expected))
	if len(fromCommit) > 0 {
		fmt.Fprintf(env.stdout, "  commit to receipt:      p50 %s  p99 %s  max %s\n", ms(percentile(fromCommit, 50)), ms(percentile(fromCommit, 99)), ms(slices.Max(fromCommit)))
		fmt.Fprintf(env.stdout, "  write start to receipt: p50 %s  p99 %s  max %s\n", ms(percentile(fromStart, 50)), ms(percentile(fromStart, 99)), ms(slices.Max(fromStart)))
	}
	return nil
}

// benchIdle measures what idle realtime connections cost a server: it
// starts `panelsync serve` as a separate process, so that the RSS it reads
// is the server's alone.
func benchIdle(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	n := fs.Int("connections", 19000, "idle authenticated, subscribed connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 60000 {
		return fmt.Errorf("--connections must be 1..60000")
	}
	// The server holds one descriptor per connection, and inherits this
	// process's limit.
	if err := raiseFileLimit(uint64(*n) + 200); err != nil {
		return fmt.Errorf("the server needs %d open files for %d connections: %w (raise ulimit -n)", *n+200, *n, err)
	}
	dir, err := os.MkdirTemp("", "panelsync-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Seed the server's database before it starts.
	cfg := app.DefaultConfig()
	cfg.DataDir, cfg.BcryptCost, cfg.LogLevel = dir, 4, "error"
	seeder, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	seed, err := app.SeedAccount(ctx, seeder.Store(), seeder.Auth(), app.SeedOptions{AccountName: "Idle", OwnerEmail: "idle@bench.local", Locations: 1})
	_ = seeder.Close()
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	port := 20000 + os.Getpid()%20000
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	server := exec.CommandContext(ctx, self, "serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-addr", "off", "--data-dir", dir, "--log-level", "error", "--bcrypt-cost", "4")
	server.Stderr = env.stderr
	if err := server.Start(); err != nil {
		return err
	}
	defer func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		_ = server.Wait()
	}()
	if err := waitReady(ctx, base); err != nil {
		return err
	}
	token, err := httpLogin(base, seed.Email, seed.Password)
	if err != nil {
		return err
	}
	// A few connections first, so the baseline includes a started stream
	// and warmed pools.
	warm, err := openSubscribers(ctx, base, token, 10)
	if err != nil {
		return err
	}
	defer closeAll(warm)
	settle()
	before, err := rssKB(server.Process.Pid)
	if err != nil {
		return err
	}
	// The clients live in helper processes, as many as the per-process
	// file limit needs, so neither end runs out of descriptors.
	per := max(1, min(*n, clientsPerProcess))
	for left := *n; left > 0; left -= per {
		helper := exec.CommandContext(ctx, self, "bench", "idle-clients", "--base", base, "--connections", strconv.Itoa(min(per, left)))
		helper.Env = append(os.Environ(), "PANELSYNC_BENCH_TOKEN="+token)
		helper.Stderr = env.stderr
		stdin, err := helper.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := helper.StdoutPipe()
		if err != nil {
			return err
		}
		if err := helper.Start(); err != nil {
			return err
		}
		// Closing its stdin tells a helper to hang up and exit.
		defer func() { _ = stdin.Close(); _ = helper.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			return fmt.Errorf("client helper failed: %q %v", line, err)
		}
	}
	settle()
	after, err := rssKB(server.Process.Pid)
	if err != nil {
		return err
	}
	perConn := float64(after-before) / float64(*n)
	fmt.Fprintf(env.stdout, "bench idle: %d authenticated, subscribed, idle connections to a separate serve process, %d CPUs\n", *n, runtime.NumCPU())
	fmt.Fprintf(env.stdout, "  server RSS %d KB before, %d KB after: %.1f KB per connection\n", before, after, perConn)
	return nil
}

// clientsPerProcess keeps each client helper well inside a 20,000 file
// limit.
const clientsPerProcess = 9500

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// benchIdleClients is the client side of bench idle: it opens the
// connections, says "ready", answers pings, and hangs up when its stdin
// closes.
func benchIdleClients(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench idle-clients", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	base := fs.String("base", "", "server base URL")
	n := fs.Int("connections", 0, "connections to open")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *n < 1 || *n > clientsPerProcess {
		return fmt.Errorf("--base and --connections 1..%d are required", clientsPerProcess)
	}
	if err := raiseFileLimit(uint64(*n) + 512); err != nil {
		return err
	}
	conns, err := openSubscribers(ctx, *base, env.getenv("PANELSYNC_BENCH_TOKEN"), *n)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	for _, c := range conns {
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	fmt.Fprintln(env.stdout, "ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// settle gives the server time to finish its handshakes and return freed
// memory before RSS is read.
func settle() { time.Sleep(3 * time.Second) }

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("server at %s not ready", base)
}

func httpLogin(base, email, password string) (string, error) {
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
	resp, err := http.Post(base+"/v1/auth/login", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("login answered %d", resp.StatusCode)
	}
	return out.AccessToken, nil
}

// rssKB reads a process's resident set size from /proc.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// raiseFileLimit lifts this process's open-file limit to at least want.
func raiseFileLimit(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		lim.Max = want
	}
	lim.Cur = want
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// frameOffset finds an event frame's offset without a full JSON decode.
func frameOffset(frame []byte) (int64, bool) {
	const key = `"offset":`
	i := strings.Index(string(frame), key)
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}
