package app_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models/dbtest"
)

// TestServe_ConnectionNeverUsed_DoesNotHoldUpShutdown opens a connection
// that sends nothing, as browsers and HTTP clients open spare ones, and a
// second one whose request is half sent when the node is told to stop. The
// node closes the first at once and answers the second, and stops well
// within its shutdown timeout.
func TestServe_ConnectionNeverUsed_DoesNotHoldUpShutdown(t *testing.T) {
	cfg := apptest.Config(t, dbtest.Backends(t)[0])
	cfg.ShutdownTimeout = 10 * time.Second
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var serveErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr = a.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(cfg.ShutdownTimeout + app.ShutdownGrace):
			t.Error("the node did not stop")
		}
	})

	unused := dial(t, addr)
	started := dial(t, addr)
	if _, err := io.WriteString(started, "GET /healthz HTTP/1.1\r\nHost: panelsync.test\r\n"); err != nil {
		t.Fatal(err)
	}
	// Connections are accepted in the order they arrive: once a later
	// one has been answered, the server holds the two above.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	cancel()
	stopping := time.Now()
	waitRefused(t, addr)
	// The half-sent request is finished after the server has stopped
	// accepting, and must still be answered.
	if _, err := io.WriteString(started, "\r\n"); err != nil {
		t.Fatalf("finish the request begun before the shutdown: %v", err)
	}
	_ = started.SetReadDeadline(time.Now().Add(cfg.ShutdownTimeout))
	answer, err := http.ReadResponse(bufio.NewReader(started), nil)
	if err != nil {
		t.Fatalf("the request begun before the shutdown was cut: %v", err)
	}
	_ = answer.Body.Close()
	if answer.StatusCode != http.StatusOK {
		t.Errorf("the request begun before the shutdown: %d, want 200", answer.StatusCode)
	}

	select {
	case <-served:
		if took := time.Since(stopping); serveErr != nil || took > 3*time.Second {
			t.Fatalf("Serve returned %v after %v, want nil well within the %v shutdown timeout", serveErr, took.Round(time.Millisecond), cfg.ShutdownTimeout)
		}
	case <-time.After(cfg.ShutdownTimeout + app.ShutdownGrace):
		t.Fatal("Serve did not return")
	}
	_ = unused.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := unused.Read(make([]byte, 1)); n != 0 || (!errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("the unused connection after the shutdown: read %d, %v; want it closed", n, err)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitRefused waits until addr refuses connections: the server has
// stopped accepting.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return
		case errors.Is(err, syscall.ECONNRESET):
			// The listener closed while this connection waited in its
			// queue: the next dial finds it gone.
		case err != nil:
			t.Fatalf("dial while stopping: %v", err)
		default:
			_ = c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("the node still accepts connections after it was told to stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
