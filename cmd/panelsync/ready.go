package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/panelsync/panelsync/app"
)

// runReady asks the server on this host whether it is ready, for container
// health checks: the image has no shell or HTTP client to do it.
func runReady(ctx context.Context, env cmdEnv, args []string) error {
	var (
		cfg     app.Config
		timeout time.Duration
	)
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: panelsync ready [flags]\n\nExits 0 when the server listening on --addr answers GET /readyz with 200, 1 otherwise.\n\n")
		fs.PrintDefaults()
	}
	// The server's own --addr setting, so that the check follows
	// PANELSYNC_ADDR wherever the server is moved.
	var addr []app.Setting
	for _, s := range cfg.Settings() {
		if s.Flag == "addr" {
			addr = append(addr, s)
		}
	}
	if err := app.Bind(fs, addr, env.getenv); err != nil {
		return err
	}
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	url, err := readyURL(cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	// The answer names the check that failed; a health log shows it.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(env.stdout, "ready: %s\n", url)
	return nil
}

// readyURL is where a server listening on addr answers /readyz from this
// host: a wildcard address is reached on the loopback interface.
func readyURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr must be host:port or :port: %w", err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
