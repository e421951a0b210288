package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// parseConfig binds every setting to a flag set for the command, parses
// args and validates the result.
func parseConfig(name string, env cmdEnv, args []string, extra func(fs *flag.FlagSet)) (app.Config, *flag.FlagSet, error) {
	var cfg app.Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: panelsync %s [flags]\n\nA flag marked (env NAME) can also be set by that variable; the flag wins.\n\n", name)
		fs.PrintDefaults()
	}
	if err := app.Bind(fs, cfg.Settings(), env.getenv); err != nil {
		return cfg, fs, err
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	return cfg, fs, cfg.Validate()
}

func runServe(ctx context.Context, env cmdEnv, args []string) error {
	cfg, fs, err := parseConfig("serve", env, args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	log := app.NewLogger(env.stderr, cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := a.Listen()
	if err != nil {
		_ = a.Close()
		return err
	}
	return a.Serve(ctx, ln)
}

func runMigrate(ctx context.Context, env cmdEnv, args []string) error {
	var all bool
	cfg, fs, err := parseConfig("migrate", env, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "with down: roll back every migration")
		fs.Usage = func() {
			fmt.Fprintln(fs.Output(), "Usage: panelsync migrate [flags] up|down|status")
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	log := app.NewLogger(env.stderr, cfg)
	store, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	db := store.DB()
	switch fs.Arg(0) {
	case "up":
		err = migrations.Up(ctx, db)
	case "down":
		if all {
			err = migrations.DownAll(ctx, db)
		} else {
			err = migrations.Down(ctx, db)
		}
	case "status":
	default:
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	st, err := migrations.Status(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "database: %s\n", cfg.DatabaseLabel())
	for _, m := range st.Migrations {
		state := "pending"
		if m.Applied {
			state = "applied"
		}
		fmt.Fprintf(env.stdout, "  %-8s %s\n", state, m.ID)
	}
	for _, id := range st.Unknown {
		fmt.Fprintf(env.stdout, "  %-8s %s (applied by a newer panelsync)\n", "unknown", id)
	}
	return nil
}

func runDemo(ctx context.Context, env cmdEnv, args []string) error {
	var (
		locations, usersPerPanel int
		simulate                 bool
	)
	cfg, fs, err := parseConfig("demo", env, args, func(fs *flag.FlagSet) {
		fs.IntVar(&locations, "locations", 3, "how many demo locations to seed")
		fs.IntVar(&usersPerPanel, "users-per-panel", 20, "users each simulated panel holds")
		fs.BoolVar(&simulate, "simulate", true, "run a simulated panel for every demo location in this process")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if locations < 1 || locations > 10000 {
		return fmt.Errorf("--locations must be between 1 and 10000")
	}
	if usersPerPanel < 1 || usersPerPanel > sim.MaxUsers {
		return fmt.Errorf("--users-per-panel must be between 1 and %d", sim.MaxUsers)
	}
	cfg.MigrateOnStart = true
	log := app.NewLogger(env.stderr, cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	chosen := env.getenv("PANELSYNC_DEMO_PASSWORD")
	credsPath := filepath.Join(cfg.DataDir, "demo-panels.json")
	// The secrets an earlier run issued are kept where they still work, so
	// that panels simulated elsewhere with that file keep linking. A file
	// that is missing or unreadable only means fresh secrets.
	var known []sim.Credentials
	if f, err := sim.LoadCredentialsFile(credsPath); err == nil {
		known = f.Panels
	}
	seed, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: locations, Password: chosen, Known: known})
	if err != nil {
		_ = a.Close()
		return err
	}
	ln, err := a.Listen()
	if err != nil {
		_ = a.Close()
		return err
	}
	base := "http://" + displayAddr(ln.Addr().String())
	err = sim.WriteCredentialsFile(credsPath, sim.CredentialsFile{Server: base, UsersPerPanel: usersPerPanel, Panels: seed.Panels})
	if err != nil {
		_ = ln.Close()
		_ = a.Close()
		return err
	}
	var fleet *sim.Fleet
	if simulate {
		fleet, err = sim.RunFleet(ctx, base, seed.Panels, sim.Options{Users: usersPerPanel, Logger: log})
		if err != nil {
			_ = ln.Close()
			_ = a.Close()
			return err
		}
	}
	// A password the operator chose is not echoed; a generated one must be,
	// or nobody could sign in. The sign-in example then reads the
	// variable, so that it works as printed in a shell that has it.
	shown, inCurl := seed.Password, seed.Password
	if chosen != "" {
		shown = "the one in PANELSYNC_DEMO_PASSWORD"
		inCurl = `'"$PANELSYNC_DEMO_PASSWORD"'`
	}
	panels := fmt.Sprintf("simulated in this process for the %d demo locations, %d users each", len(seed.Panels), usersPerPanel)
	if !simulate {
		panels = "not simulated; run: go run ./cmd/panelsim --credentials " + credsPath
	}
	locationsLine := fmt.Sprintf("%d (%d new)", len(seed.Locations), seed.Created)
	if others := len(seed.Locations) - len(seed.Panels); others > 0 {
		locationsLine = fmt.Sprintf("%d (%d demo locations, %d new; %d added through the API, left as they are)",
			len(seed.Locations), len(seed.Panels), seed.Created, others)
	}
	fmt.Fprintf(env.stdout, `
panelsync demo is running at %s
  console:   open %s/ in a browser and sign in
  login:     %s
  password:  %s
  locations: %s
  panels:    %s
  API docs:  %s/docs

Try:
  curl -s -X POST %s/v1/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"%s","password":"%s"}'

`, base, base, seed.Email, shown, locationsLine, panels, base, base, seed.Email, inCurl)
	if dir := a.Outbox(); dir != "" {
		fmt.Fprintf(env.stdout, "Mail is written to %s (set --smtp-url to send it).\n\n", dir)
	}
	err = a.Serve(ctx, ln)
	if fleet != nil {
		fleet.Wait()
	}
	return err
}

func runSeed(ctx context.Context, env cmdEnv, args []string) error {
	var (
		locations, usersPerPanel int
		out, server, account     string
	)
	cfg, fs, err := parseConfig("seed", env, args, func(fs *flag.FlagSet) {
		fs.IntVar(&locations, "locations", 10, "how many locations (each with a panel) to create")
		fs.IntVar(&usersPerPanel, "users-per-panel", 20, "users each simulated panel should hold, written to the file for panelsim")
		fs.StringVar(&out, "out", "", "credentials file to write for panelsim (required; it holds device secrets and is written mode 0600)")
		fs.StringVar(&server, "server", "", "server URL the panels should dial, written to the file for panelsim (default: this host at --addr)")
		fs.StringVar(&account, "account", "Load Test Co.", "name of the account to create")
	})
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case out == "":
		return fmt.Errorf("--out is required")
	case locations < 1 || locations > 100000:
		return fmt.Errorf("--locations must be between 1 and 100000")
	case usersPerPanel < 1 || usersPerPanel > sim.MaxUsers:
		return fmt.Errorf("--users-per-panel must be between 1 and %d", sim.MaxUsers)
	}
	if server == "" {
		// The node this seed is for listens at --addr (or PANELSYNC_ADDR),
		// so that is where its panels dial unless told otherwise.
		server = "http://" + dialAddr(cfg.Addr)
	}
	if _, err := sim.LinkURL(server); err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	log := app.NewLogger(env.stderr, cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	email := "owner+" + strings.ToLower(models.NewID()[24:]) + "@seed.panelsync.local"
	res, err := app.SeedAccount(ctx, a.Store(), a.Auth(), app.SeedOptions{
		AccountName: account, OwnerEmail: email, Locations: locations, UsersPerPanel: usersPerPanel, Server: server,
	})
	if err != nil {
		return err
	}
	if err := sim.WriteCredentialsFile(out, res.Panels); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "seeded account %q (%s) with %d locations\n  owner:    %s\n  password: %s\n  panels:   %s (run: go run ./cmd/panelsim --credentials %s)\n",
		account, res.AccountID, locations, res.Email, res.Password, out, out)
	return nil
}

// dialAddr turns a listen address into one a client on this host can
// dial: a wildcard or missing host becomes the loopback address.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(addr string) string {
	for _, wildcard := range []string{"[::]:", "0.0.0.0:"} {
		if strings.HasPrefix(addr, wildcard) {
			return "localhost:" + strings.TrimPrefix(addr, wildcard)
		}
	}
	return addr
}
