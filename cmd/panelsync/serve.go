package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/migrations"
)

// parseConfig binds every setting to a flag set for the command, parses
// args and validates the result.
func parseConfig(name string, env cmdEnv, args []string, extra func(fs *flag.FlagSet)) (app.Config, *flag.FlagSet, error) {
	var cfg app.Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
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
	var locations int
	cfg, fs, err := parseConfig("demo", env, args, func(fs *flag.FlagSet) {
		fs.IntVar(&locations, "locations", 3, "how many demo locations to seed")
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
	cfg.MigrateOnStart = true
	log := app.NewLogger(env.stderr, cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	chosen := env.getenv("PANELSYNC_DEMO_PASSWORD")
	seed, err := app.SeedDemo(ctx, a.Store(), a.Auth(), locations, chosen)
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
	// A password the operator chose is not echoed; a generated one must be,
	// or nobody could sign in.
	shown := seed.Password
	if chosen != "" {
		shown = "(the value of PANELSYNC_DEMO_PASSWORD)"
	}
	fmt.Fprintf(env.stdout, `
panelsync demo is running at %s
  login:     %s
  password:  %s
  locations: %d (%d new)
  API docs:  %s/docs

Try:
  curl -s -X POST %s/v1/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"%s","password":"%s"}'

`, base, seed.Email, shown, len(seed.Locations), seed.Created, base, base, seed.Email, shown)
	return a.Serve(ctx, ln)
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
