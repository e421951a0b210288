package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
)

func TestDemo_WithoutAnSMTPServer_SaysWhereMailIsWritten(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{
		"PANELSYNC_DATA_DIR":    dataDir,
		"PANELSYNC_ADDR":        "127.0.0.1:0",
		"PANELSYNC_BCRYPT_COST": "4",
		"PANELSYNC_LOG_LEVEL":   "error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut apptest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--locations", "1", "--simulate=false"}, &out, &errOut, func(k string) string { return env[k] })
	}()
	want := "Mail is written to " + filepath.Join(dataDir, "outbox")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case code := <-done:
			t.Fatalf("demo exited with %d before saying where mail goes; stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo never said %q; stdout:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo exited with %d; stderr:\n%s", code, errOut.String())
	}
}
