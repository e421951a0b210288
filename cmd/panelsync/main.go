// Command panelsync is the Remote Services backend: it serves the apps'
// REST API, keeps the panels' live links and runs their syncs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env cmdEnv, args []string) error
}

// cmdEnv is the process's outside world, passed in so that commands can be
// run from tests.
type cmdEnv struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func commands() []command {
	return []command{
		{"serve", "run the API server", runServe},
		{"migrate", "apply, roll back or list schema migrations (up|down|status)", runMigrate},
		{"demo", "seed a demo account with locations and simulated panels and serve it, with zero configuration", runDemo},
		{"seed", "create an account with N locations and write its panels' credentials for panelsim", runSeed},
		{"account", "operators: create a customer account and invite its first owner (account create)", runAccount},
		{"support", "operators: create a support login and print its invitation link (support create)", runSupport},
		{"ready", "exit 0 when this host's server answers /readyz with 200: a container health check", runReady},
		{"watch", "follow an account's Event Log live, resuming by offset after a drop", runWatch},
		{"bench", "run a benchmark: tap, fanout, idle, panels, all-locations or import", runBench},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	env := cmdEnv{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "panelsync %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "panelsync: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage reports that the command line was wrong and usage was printed.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "panelsync: the Remote Services backend for alarm panels.")
	fmt.Fprintln(w, "\nUsage: panelsync <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'panelsync <command> --help' for a command's flags.")
}

func runVersion(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "panelsync", version())
	return nil
}

func numCPU() int { return runtime.NumCPU() }

// version reads the module version and revision stamped by the Go build.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v + " " + info.GoVersion
}
