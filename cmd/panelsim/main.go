// Command panelsim simulates alarm panels that link to a panelsync server
// over the device protocol: thousands of them if asked, with chosen user
// counts, latency, errors, timeouts, users refused by users.put, dropped
// links, arm states and keypad activity. It is a load and demo tool; it
// only ever connects to the one server it is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/panelsync/panelsync/panel/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// envPrefix marks environment variables that set flags: --error-rate is
// also PANELSIM_ERROR_RATE. A flag on the command line wins.
const envPrefix = "PANELSIM_"

// settings are the parsed and checked command line.
type settings struct {
	credentialsPath string
	server          string
	count           int
	statusEvery     time.Duration
	logLevel        slog.Level
	opts            sim.Options
}

func newFlagSet(s *settings, armed *string, logLevel *string) *flag.FlagSet {
	fs := flag.NewFlagSet("panelsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.credentialsPath, "credentials", "", "JSON file with the server URL and the panels' serials and secrets (required)")
	fs.StringVar(&s.server, "server", "", "server base URL, e.g. http://127.0.0.1:8080 (default: the file's \"server\")")
	fs.IntVar(&s.count, "count", 0, "simulate only the first `N` panels of the file (default: all)")
	fs.IntVar(&s.opts.Users, "users", 0, "users per panel, 1 to "+fmt.Sprint(sim.MaxUsers)+" (default: the file's users_per_panel, else "+fmt.Sprint(sim.DefaultUsers)+")")
	fs.Int64Var(&s.opts.Seed, "seed", 1, "seed for the generated users, configuration and status")
	fs.DurationVar(&s.opts.Latency, "latency", 0, "delay before each answer")
	fs.DurationVar(&s.opts.LatencyJitter, "latency-jitter", 0, "up to this much extra random delay per answer")
	fs.Float64Var(&s.opts.ErrorRate, "error-rate", 0, "fraction of commands answered with panel_error, 0 to 1")
	fs.Float64Var(&s.opts.TimeoutRate, "timeout-rate", 0, "fraction of commands never answered, 0 to 1")
	fs.Float64Var(&s.opts.PutFailureRate, "put-failure-rate", 0, "fraction of users in a users.put refused with device_error while the others apply, 0 to 1")
	s.opts.ProtectedUsers = []int{sim.DefaultProtectedUser}
	fs.Var((*userNumbers)(&s.opts.ProtectedUsers), "protected-users", "comma-separated user `numbers` that users.put may not write or remove, refused as protected; none for no one")
	fs.DurationVar(&s.opts.FlapEvery, "flap-every", 0, "drop each link about this often, then reconnect (0: never)")
	fs.StringVar(armed, "armed", "", "initial state of every partition: disarmed, armed_stay, armed_away or armed_night (default disarmed)")
	fs.DurationVar(&s.opts.KeypadChangeEvery, "keypad-change-every", 0, "change a random user at the keypad about this often per panel (0: never)")
	fs.DurationVar(&s.opts.EventEvery, "event-every", 0, "arm, disarm or raise a trouble about this often per panel (0: never)")
	fs.DurationVar(&s.opts.CheckinInterval, "checkin-interval", 0, "check in this often, overriding the server's hello (0: as the server asks)")
	fs.DurationVar(&s.statusEvery, "status-every", 5*time.Second, "print a status line this often")
	fs.StringVar(logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	return fs
}

// userNumbers is a flag holding a comma-separated list of user numbers,
// or "none" for the empty list. Setting it replaces the default rather
// than adding to it. The range of each number is checked with the other
// options.
type userNumbers []int

func (u *userNumbers) String() string {
	if u == nil || len(*u) == 0 {
		return "none"
	}
	parts := make([]string, len(*u))
	for i, n := range *u {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (u *userNumbers) Set(v string) error {
	// An empty, non-nil list protects no one, where nil would mean the
	// simulator's default.
	list := []int{}
	if v = strings.TrimSpace(v); v != "" && v != "none" {
		for part := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil {
				return fmt.Errorf("%.32q is not a user number", part)
			}
			list = append(list, n)
		}
	}
	*u = list
	return nil
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: panelsim --credentials FILE [flags]

Simulates alarm panels linked to a panelsync server over the device
protocol. The credentials file looks like:

  {"server":"http://127.0.0.1:8080",
   "panels":[{"serial":"…","secret":"…","location_id":"…","name":"…"}]}

Every flag can also be set by an environment variable: --error-rate is
PANELSIM_ERROR_RATE. The command line wins. SIGINT or SIGTERM stops the
panels and exits.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseSettings reads the environment and the command line. It returns
// flag.ErrHelp when help was asked for.
func parseSettings(args []string, getenv func(string) string, stdout io.Writer) (settings, error) {
	var s settings
	var armed, logLevel string
	fs := newFlagSet(&s, &armed, &logLevel)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return s, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
		}
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s.opts.ArmedState = armed
	if err := s.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return s, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", logLevel)
	}
	return s, s.check()
}

// check validates the settings that do not need the credentials file.
func (s settings) check() error {
	var errs []error
	if s.credentialsPath == "" {
		errs = append(errs, errors.New("--credentials is required"))
	}
	if s.server != "" {
		if _, err := sim.LinkURL(s.server); err != nil {
			errs = append(errs, fmt.Errorf("--server: %w", err))
		}
	}
	if s.count < 0 {
		errs = append(errs, fmt.Errorf("--count must not be negative, got %d", s.count))
	}
	if s.opts.Users < 0 {
		errs = append(errs, fmt.Errorf("--users must be at least 1, got %d", s.opts.Users))
	}
	if s.statusEvery <= 0 {
		errs = append(errs, errors.New("--status-every must be positive"))
	}
	if err := s.opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// panelsToRun loads the credentials file and picks the server and panels,
// and the users per panel when the command line left it to the file.
func (s *settings) panelsToRun() (server string, creds []sim.Credentials, err error) {
	file, err := sim.LoadCredentialsFile(s.credentialsPath)
	if err != nil {
		return "", nil, err
	}
	if s.opts.Users == 0 {
		s.opts.Users = file.UsersPerPanel
	}
	if s.opts.Users == 0 {
		s.opts.Users = sim.DefaultUsers
	}
	server = s.server
	if server == "" {
		server = file.Server
	}
	if server == "" {
		return "", nil, fmt.Errorf("no server: pass --server or set \"server\" in %s", s.credentialsPath)
	}
	creds = file.Panels
	if s.count > 0 {
		if s.count > len(creds) {
			return "", nil, fmt.Errorf("--count %d, but %s lists only %d panels", s.count, s.credentialsPath, len(creds))
		}
		creds = creds[:s.count]
	}
	return server, creds, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	s, err := parseSettings(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "panelsim: %v\nRun panelsim --help for usage.\n", err)
		return exitUsage
	}
	server, creds, err := s.panelsToRun()
	if err != nil {
		fmt.Fprintf(stderr, "panelsim: %v\n", err)
		return exitUsage
	}
	s.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: s.logLevel}))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fleet, err := sim.RunFleet(ctx, server, creds, s.opts)
	if err != nil {
		fmt.Fprintf(stderr, "panelsim: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "panelsim: %d panels linking to %s (%d users each, seed %d); Ctrl-C stops\n",
		fleet.Len(), server, s.opts.Users, s.opts.Seed)

	reporter := newReporter(fleet, stdout)
	ticker := time.NewTicker(s.statusEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			reporter.report("")
		case <-ctx.Done():
			fleet.Wait()
			reporter.report("stopped: ")
			return exitOK
		}
	}
}
